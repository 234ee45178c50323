"""Retrying a channel's API calls: rate limits (HTTP 429 with `Retry-After`) and transient errors wait
and try again with exponential backoff; anything else is permanent at once."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["PermanentError", "RetryPolicy", "TransientError", "with_retries"]

log = logging.getLogger("hitl_streams.channels")

_T = TypeVar("_T")


class TransientError(Exception):
    """Worth another try; `retry_after` is the server's own wait (seconds), when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Will not succeed by trying again (a wrong channel, a revoked token, retries exhausted)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` in all; waits `base * 2**n` seconds (jittered, at most `cap`), or the server's `Retry-After`
    (at most `max_retry_after`: a longer wait would hold an HTTP request open for too long)."""

    attempts: int = 4
    base: float = 0.25
    cap: float = 4.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return min(self.cap, self.base * 2.0**attempt) * (0.5 + random.random() / 2)


async def with_retries(
    what: str,
    call: Callable[[], Awaitable[_T]],
    classify: Callable[[Exception], Exception],
    policy: RetryPolicy,
) -> _T:
    """`call()` until it succeeds; `classify` maps an error to `TransientError` or `PermanentError`.
    Raises `PermanentError` (retries exhausted included)."""
    attempt = 0
    while True:
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = classify(exc)
            if isinstance(kind, PermanentError):
                raise kind from exc
            assert isinstance(kind, TransientError)
            attempt += 1
            if attempt >= policy.attempts:
                raise PermanentError(f"{what}: gave up after {attempt} attempts: {kind}") from exc
            wait = policy.delay(attempt - 1, kind.retry_after)
            log.info("hitl: %s failed (%s); retrying in %.2fs", what, kind, wait)
            await asyncio.sleep(wait)
