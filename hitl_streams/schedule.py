"""Reminder schedule expansion (REF §6.7, without its bugs, REF §10.1): entries -> a lazy, sorted stream of fires.

`expand_schedule(entries, anchor, timeout)` yields `Fire(at, index, entry)`, `at` in seconds after `anchor`,
sorted by `(at, index)`. It is a generator over one generator per entry merged with `heapq.merge`, so an
unbounded `every`/`daily_at` with no timeout costs nothing until a fire is asked for (the reference tried
to materialize infinitely many fires: #1). With a timeout only fires strictly before it are produced (the
timeout wins ties, as in the reference's wait loop).

Rules, each deliberate:

- The anchor is whatever the caller passes, and it must be timezone-aware. Pass a durable value (the client
  uses a deterministic one, e.g. a timestamp recorded by the engine), never a fresh `now()` on every replay
  (#7): the schedule is a pure function of its inputs.
- Wall-clock timings (`at`, `every(..., at=)`, skip days) are evaluated in the entry's `tz`, UTC when none
  is given: UTC is the same on every machine and every replay; the host zone (which the reference read)
  is not.
- Calendar days are stepped on local dates (`date + timedelta(days=n)`), never by adding 24 h, so a daily
  fire stays at its clock time across DST changes. `every("2d", at="09:00")` fires every other day (#3).
- Each calendar day fires at most once per entry, and `count` counts fires that happen: a skipped day is
  dropped (an `every`) or moves a one-off `at` to the next allowed day, never piled onto the next allowed
  day (#2: the reference fired Monday three times for a weekdays schedule started on a Saturday).
- `every` without `at` fires at `anchor + i * interval` (elapsed time, not wall time); with `skip`, a fire
  landing on a skipped weekday in the entry's tz is dropped (#4: the reference ignored tz and skip there).
  An `every` whose fires keep landing on skipped days (say a 7-day interval started on a skipped day) ends
  after `MAX_SKIPPED_RUN` consecutive dropped fires instead of looking forever.
- DST gap (a local time that does not exist, e.g. 02:30 on the US spring-forward day): the fire happens at
  the instant the time would have had with the offset in force before the gap, RFC 5545's rule and
  `zoneinfo`'s `fold=0`: 02:30 New York fires at 03:30 EDT (the reference fired at 01:30).
- DST fold (a local time that happens twice, e.g. 01:30 on the US fall-back day): the fire happens once,
  at the first occurrence (`fold=0`, the daylight-time one); if the anchor is past it, the next day's.
- Fires beyond year 9999 (where `datetime` ends) are not produced.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import msgspec

from .errors import ValidationError
from .reminders import WEEKDAYS, At, Delay, EscalateEntry, Every, RemindEntry, ReminderEntry, zone

__all__ = ["MAX_SKIPPED_RUN", "Fire", "expand_schedule"]

MAX_SKIPPED_RUN: Final = 1_000
_DAY: Final = timedelta(days=1)


class Fire(msgspec.Struct, frozen=True):
    """One fire of a schedule."""

    at: float  # seconds after the anchor
    index: int  # the entry's index in the list given to expand_schedule
    entry: ReminderEntry


def expand_schedule(entries: Sequence[ReminderEntry], anchor: datetime, timeout: float | None = None) -> Iterator[Fire]:
    """The fires of `entries` after `anchor`, sorted by `(at, index)`, lazily; with `timeout` (seconds),
    only those with `at < timeout`. Arguments are checked now, not at the first `next()`."""
    if not isinstance(anchor, datetime) or anchor.utcoffset() is None:
        raise ValidationError("The schedule's anchor must be a timezone-aware datetime")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise ValidationError(f"Invalid timeout: {timeout!r} (must be a positive number of seconds, or None)")
    entries = list(entries)  # a one-shot iterable is read once, here
    for entry in entries:
        if not isinstance(entry, RemindEntry | EscalateEntry):
            raise ValidationError("reminders must be built with remind.* or escalate.to(...).*")
    try:
        start = anchor.astimezone(UTC)
    except OverflowError:
        raise ValidationError("The schedule's anchor is out of range") from None
    limit = math.inf if timeout is None else float(timeout)
    streams = [_fires(index, entry, start, limit) for index, entry in enumerate(entries)]
    return heapq.merge(*streams, key=lambda fire: (fire.at, fire.index))


def _fires(index: int, entry: ReminderEntry, start: datetime, limit: float) -> Iterator[Fire]:
    timing = entry.timing
    if isinstance(timing, Delay):
        offsets: Iterator[float] = iter((timing.after,))
    elif isinstance(timing, At):
        offsets = _at(timing, start)
    elif timing.at is None:
        offsets = _every_elapsed(timing, start, min(limit, timing.until or math.inf))
    else:
        offsets = _every_daily(timing, start, min(limit, timing.until or math.inf))
    try:
        for at in offsets:
            if at >= limit:
                return
            if at >= 0:
                yield Fire(at, index, entry)
    except OverflowError:  # past year 9999
        return


# --- local time ------------------------------------------------------------------------------------------
def _clock(clock: str) -> tuple[int, int]:
    hour, minute = clock.split(":")
    return int(hour), int(minute)


def _skip_days(skip: tuple[str, ...]) -> frozenset[int]:
    return frozenset(WEEKDAYS.index(day) for day in skip)


def _local(day: date, clock: tuple[int, int], tz: ZoneInfo) -> datetime:
    """The UTC instant of `clock` on local `day`: fold=0 picks a fold's first occurrence, and for a time
    in a gap, the offset before the gap (so 02:30 in a 02:00->03:00 gap is 03:30 new time)."""
    return datetime(day.year, day.month, day.day, clock[0], clock[1], tzinfo=tz, fold=0).astimezone(UTC)


def _allowed(instant: datetime, tz: ZoneInfo, skip: frozenset[int]) -> bool:
    """Whether `instant` falls on a weekday that is not skipped, in `tz`."""
    return not skip or instant.astimezone(tz).weekday() not in skip


def _offset(instant: datetime, start: datetime) -> float:
    # Both in UTC: aware datetimes sharing a tzinfo would otherwise subtract as wall times.
    return (instant - start).total_seconds()


# --- timings ---------------------------------------------------------------------------------------------
def _at(timing: At, start: datetime) -> Iterator[float]:
    """One fire: `clock` on the anchor's local day + day_offset, or the first later allowed day, after the anchor."""
    tz = zone(timing.tz)
    clock = _clock(timing.clock)
    skip = _skip_days(timing.skip)
    day = start.astimezone(tz).date() + timedelta(days=timing.day_offset)
    for _ in range(10):  # one day whose clock has passed, at most six skipped days, one day that did not exist
        if day.weekday() not in skip:
            instant = _local(day, clock, tz)
            if instant > start and _allowed(instant, tz, skip):
                yield _offset(instant, start)
                return
        day += _DAY


def _every_elapsed(timing: Every, start: datetime, limit: float) -> Iterator[float]:
    """`interval * i` for i = 1, 2, ...; fires on skipped weekdays (in tz) dropped."""
    interval = timing.interval
    skip = _skip_days(timing.skip)
    tz = zone(timing.tz)
    fired = 0
    skipped_run = 0
    i = 1
    while True:
        at = interval * i
        if at >= limit:
            return
        if skip:
            local = (start + timedelta(seconds=at)).astimezone(tz)
            if local.weekday() in skip:
                skipped_run += 1
                if skipped_run > MAX_SKIPPED_RUN:
                    return
                # Jump straight to the first multiple at or after the start of the next allowed local day.
                day = local.date() + _DAY
                while day.weekday() in skip:
                    day += _DAY
                allowed = _offset(_local(day, (0, 0), tz), start)
                i = max(i + 1, math.ceil(allowed / interval))
                continue
        skipped_run = 0
        yield at
        fired += 1
        if timing.count is not None and fired >= timing.count:
            return
        i += 1


def _every_daily(timing: Every, start: datetime, limit: float) -> Iterator[float]:
    """`clock` on every `step_days`-th local day from the first one still ahead; skipped weekdays dropped."""
    assert timing.at is not None
    tz = zone(timing.tz)
    clock = _clock(timing.at)
    skip = _skip_days(timing.skip)
    step = timedelta(days=timing.step_days)
    day = start.astimezone(tz).date()
    if _local(day, clock, tz) <= start:
        day += _DAY
    # The weekdays visited repeat every 7 steps; if all of them are skipped, nothing ever fires.
    if all((day + step * k).weekday() in skip for k in range(7)):
        return
    fired = 0
    previous = 0.0
    while True:
        if day.weekday() not in skip:
            instant = _local(day, clock, tz)
            at = _offset(instant, start)
            if at >= limit:
                return
            # A local day that did not exist (Samoa skipped 2011-12-30) resolves onto the next one: never fire
            # twice at one instant, nor on a skipped day.
            if at > previous and _allowed(instant, tz, skip):
                yield at
                previous = at
                fired += 1
                if timing.count is not None and fired >= timing.count:
                    return
        day += step
