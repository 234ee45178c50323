"""The server-side schedule extension of `POST requests` and `POST batches`: what a caller may send, and
what falls due when.

A body may carry `"schedule"` (the TypeScript client never sends it; without it nothing changes):

    {"schedule": {"timeout": "10m",                        # or "deadline": "2026-11-27T18:00:00.000Z"
                  "reminders": [{"kind": "remind", "timing": {"kind": "delay", "after": "5m"}},
                                {"kind": "escalate", "channel": "inbox:ops", "mode": "notify",
                                 "timing": {"kind": "every", "interval": "1h", "count": 3}}]}}

`timeout` is a duration after the request's creation (the same vocabulary as the workflow client:
"2w" "7d" "72h" "30m" "10s" "500ms", or seconds), `deadline` an absolute JavaScript ISO time; at most one
of the two. `reminders` is the JSON form of `hitl_streams.reminders` (`encode_reminders`), expanded by the
same `expand_schedule` the workflow client uses, anchored at the request's `createdAt`.

Fires are numbered in expansion order (0, 1, ...); the deadline is fire -1 and always comes last, since
reminders are clipped to fall strictly before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from .._time import iso_to_ms, ms_to_iso
from ..durations import parse_duration
from ..errors import ValidationError
from ..reminders import ReminderEntry, decode_reminders, encode_reminders
from ..schedule import expand_schedule

__all__ = ["DEADLINE", "Due", "ServerSchedule", "due_after", "parse_schedule"]

DEADLINE = -1
"""The fire number of the deadline."""

_KEYS = frozenset({"timeout", "deadline", "reminders"})


class ServerSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule as the caller sent it: a relative `timeout` (seconds) or an absolute `deadline` (ISO),
    and reminders."""

    timeout: float | None = None
    deadline: str | None = None
    reminders: tuple[ReminderEntry, ...] = ()

    def timeout_at(self, anchor: str) -> str | None:
        """The deadline as an ISO time, for a subject created at `anchor`."""
        if self.deadline is not None:
            return self.deadline
        if self.timeout is None:
            return None
        return ms_to_iso(iso_to_ms(anchor) + round(self.timeout * 1000))

    def encoded_reminders(self) -> list[dict[str, Any]]:
        return encode_reminders(self.reminders)


class Due(msgspec.Struct, frozen=True):
    """One item that falls due: reminder `fire` (or `DEADLINE`) at `at_ms` (epoch milliseconds)."""

    fire: int
    at_ms: int
    entry: ReminderEntry | None = None


def parse_schedule(raw: object) -> ServerSchedule | None:
    """The `schedule` member of a create body; `None` when absent. Every mistake is a `ValidationError`."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationError("schedule must be an object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValidationError(f"schedule has unknown members: {', '.join(unknown)}")
    timeout_raw, deadline_raw = raw.get("timeout"), raw.get("deadline")
    if timeout_raw is not None and deadline_raw is not None:
        raise ValidationError("schedule takes a timeout or a deadline, not both")
    timeout = None if timeout_raw is None else parse_duration(timeout_raw, what="schedule.timeout")
    deadline = None if deadline_raw is None else _deadline(deadline_raw)
    reminders_raw = raw.get("reminders", [])
    if reminders_raw is None:
        reminders_raw = []
    reminders = tuple(decode_reminders(reminders_raw))
    if timeout is None and deadline is None and not reminders:
        return None
    return ServerSchedule(timeout=timeout, deadline=deadline, reminders=reminders)


def _deadline(value: object) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise ValidationError("schedule.deadline must be an ISO time such as 2026-11-27T18:00:00.000Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f'schedule.deadline is not an ISO time: "{value}"') from None
    if parsed.tzinfo is None:
        raise ValidationError("schedule.deadline needs a time zone (e.g. a trailing Z)")
    if not 2000 <= parsed.year <= 9998:
        raise ValidationError("schedule.deadline is out of range")
    return ms_to_iso(int(parsed.timestamp() * 1000))


def _fires(anchor: str, timeout_at: str | None, reminders: list[dict[str, Any]]) -> Iterator[Due]:
    """Every item of a schedule in order: the reminders' fires, then the deadline."""
    anchor_ms = iso_to_ms(anchor)
    start = datetime.fromtimestamp(anchor_ms / 1000, UTC)
    limit = None if timeout_at is None else (iso_to_ms(timeout_at) - anchor_ms) / 1000
    entries = decode_reminders(reminders) if reminders else []
    if limit is None or limit > 0:
        for n, fire in enumerate(expand_schedule(entries, start, limit)):
            yield Due(n, anchor_ms + round(fire.at * 1000), fire.entry)
    if timeout_at is not None:
        yield Due(DEADLINE, iso_to_ms(timeout_at))


def due_after(
    anchor: str, timeout_at: str | None, reminders: list[dict[str, Any]], fired: int | None = None
) -> Iterator[Due]:
    """The items still due after reminder `fired` ran (all of them when `fired` is None), in order."""
    for due in _fires(anchor, timeout_at, reminders):
        if fired is None or due.fire == DEADLINE or due.fire > fired:
            yield due
