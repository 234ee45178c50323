"""Cancellation that redis-py lost: a guard for loops that must stop when their task is cancelled.

redis-py's asyncio client can swallow a cancellation that lands while a reply is being read
(redis/redis-py#2028, #2551; seen here with a blocking XREADGROUP on redis-py 8.1): the task is marked
as cancelling, yet the command returns normally. A `while True` loop around such a call then never
stops. Each such loop calls `reraise_lost_cancel()` once per turn.
"""

from __future__ import annotations

import asyncio

__all__ = ["reraise_lost_cancel"]


def reraise_lost_cancel() -> None:
    """Raise `CancelledError` if the current task was cancelled but the cancellation never arrived."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
