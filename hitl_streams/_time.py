"""Timestamps in the JavaScript ISO format the TypeScript SDK writes (`2026-11-25T17:03:04.512Z`)."""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

__all__ = ["iso_to_ms", "ms_to_iso", "now_iso", "now_ms"]

_DAY_MS = 86_400_000


def now_ms() -> int:
    """Milliseconds since the epoch, like JavaScript's `Date.now()`."""
    return time.time_ns() // 1_000_000


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian, any year (H. Hinnant)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Inverse of `_civil_from_days`."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def ms_to_iso(ms: int) -> str:
    """Format epoch milliseconds exactly as JavaScript's `Date.prototype.toISOString()`.

    Years 0-9999 have four digits (`0999-...`); others use JavaScript's signed six-digit form
    (`+010000-...`, `-000001-...`).
    """
    days, rest = divmod(ms, _DAY_MS)
    year, month, day = _civil_from_days(days)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year > 0 else '-'}{abs(year):06d}"
    return f"{year_text}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


_last_now: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))


def now_iso() -> str:
    """The current time as a JavaScript ISO string."""
    global _last_now, _last_second
    ms = now_ms()
    if _last_now[0] != ms:  # under load many writes share a millisecond: format it once
        # and the date and time up to the second once per second: seven int formats cost ~1 µs
        second, millis = divmod(ms, 1000)
        if _last_second[0] != second:
            _last_second = (second, ms_to_iso(second * 1000)[:-5])  # without ".000Z"
        _last_now = (ms, _last_second[1] + _MILLIS[millis])
    return _last_now[1]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_JS_ISO = re.compile(r"([+-]\d{6}|\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")


@functools.lru_cache(maxsize=4096)
def iso_to_ms(value: str) -> int:
    """Epoch milliseconds of an ISO timestamp, like JavaScript's `Date.parse` (0 when unparseable).

    Cached: every projection step that scores a request parses the same `createdAt` again. The form every
    writer produces (`toISOString()`: `2026-11-25T17:03:04.512Z`) is read as its second, parsed once per
    second (`_second_ms`), plus its milliseconds: a timeline entry's or a new request's `createdAt` is
    seldom seen twice, but its second is."""
    if len(value) == 24 and value[19] == "." and value[23] == "Z" and value.isascii():
        millis = value[20:23]
        if millis.isdigit():
            second = _second_ms(value[:19])
            if second is not None:
                return second + int(millis)
    return _parsed_ms(value)


@functools.lru_cache(maxsize=1024)
def _second_ms(head: str) -> int | None:
    """Epoch milliseconds of `YYYY-MM-DDTHH:MM:SS` when `_parsed_ms` reads it as a valid time; else None
    (`iso_to_ms` then leaves the whole value to `_parsed_ms`, so both paths always agree)."""
    match = _JS_ISO.fullmatch(head + "Z")
    return None if match is None else _fields_ms(match)


def _fields_ms(match: re.Match[str]) -> int | None:
    """Epoch milliseconds of a `_JS_ISO` match, None when a field is out of range."""
    year, month, day, hours, minutes, seconds = (int(g) for g in match.groups()[:6])
    millis = int((match.group(7) or "0").ljust(3, "0")[:3])
    if 1 <= month <= 12 and 1 <= day <= 31 and hours <= 24 and minutes <= 59 and seconds <= 59:
        days = _days_from_civil(year, month, day)
        return days * _DAY_MS + ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
    return None


def _parsed_ms(value: str) -> int:
    """`iso_to_ms` for any form: the JavaScript one by `_JS_ISO`, others by `datetime.fromisoformat`."""
    match = _JS_ISO.fullmatch(value)
    if match is not None:
        return _fields_ms(match) or 0
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _MILLISECOND
