"""Reading redis-py replies the same way whether the client was made with `decode_responses` or not."""

from __future__ import annotations

from typing import Any

__all__ = ["event_field", "text"]


def text(value: Any) -> str:
    """A reply value (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def event_field(fields: Any) -> Any:
    """The `event` field of a stream entry, parsed (a dict) or raw (a flat [field, value, ...] list);
    `None` when the entry has none."""
    if isinstance(fields, dict):
        return fields.get("event", fields.get(b"event"))
    for i in range(0, len(fields) - 1, 2):
        if fields[i] in (b"event", "event"):
            return fields[i + 1]
    return None
