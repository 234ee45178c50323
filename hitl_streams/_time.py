"""Timestamps in the JavaScript ISO format the TypeScript SDK writes (`2026-11-25T17:03:04.512Z`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["iso_to_ms", "ms_to_iso", "now_iso", "now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch, like JavaScript's `Date.now()`."""
    return time.time_ns() // 1_000_000


def ms_to_iso(ms: int) -> str:
    """Format epoch milliseconds exactly as JavaScript's `Date.prototype.toISOString()`."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def now_iso() -> str:
    """The current time as a JavaScript ISO string."""
    return ms_to_iso(now_ms())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def iso_to_ms(value: str) -> int:
    """Epoch milliseconds of an ISO timestamp, like JavaScript's `Date.parse` (0 when unparseable)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _MILLISECOND
