"""Schedule expansion: each bug of REF §10.1 against a port of the reference, DST gaps and folds, properties."""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reminder_strategies import ZONES, entries

from hitl_streams.errors import ValidationError
from hitl_streams.reminders import At, Every, ReminderEntry, escalate, remind
from hitl_streams.schedule import MAX_SKIPPED_RUN, Fire, expand_schedule

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
HOUR = 3600.0
DAY = 86_400.0


# --- a port of the reference's schedule.ts (REF §6.7), bugs included ----------------------------------------
# Entries are plain dicts, as the reference's builders produce them (no validation); durations are its strings
# or numbers of milliseconds. Returns [(seconds after the anchor, entry index)]. Where the reference would loop
# forever, the port raises `ReferenceWouldNotTerminate` after `max_fires` fires.
class ReferenceWouldNotTerminate(Exception):
    pass


_REF_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _ref_ms(d: object) -> float:
    if isinstance(d, int | float):
        return float(d)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(w|d|h|m|s)", str(d))
    if match is None:
        raise ValueError(f'Invalid duration: "{d}"')
    return (
        float(match.group(1))
        * {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}[match.group(2)]
    )


def _ref_zone(tz: str | None) -> ZoneInfo:
    return ZoneInfo(tz or os.environ.get("TZ") or "UTC")  # explicit, else $TZ, else the host's (UTC here)


def _ref_clock(clock: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", clock)
    if match is None:
        raise ValueError(f'Invalid clock time: "{clock}" (expected e.g. "07:00")')
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f'Invalid clock time: "{clock}"')
    return hour, minute


def _ref_parts(instant: datetime, tz: ZoneInfo) -> datetime:
    """The local wall-clock parts of an instant (a naive datetime, whole seconds)."""
    return instant.astimezone(tz).replace(tzinfo=None, microsecond=0)


def _ref_local_to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """Start from the naive instant read as UTC, then correct it 4 times by the observed offset."""
    utc = local.replace(tzinfo=UTC)
    for _ in range(4):
        utc += local - _ref_parts(utc, tz)
    return utc


def _ref_add_days(parts: datetime, days: int, tz: ZoneInfo) -> datetime:
    noon = _ref_local_to_utc(parts.replace(hour=12, minute=0, second=0), tz)
    seen = _ref_parts(noon + timedelta(days=days), tz)
    return seen.replace(hour=parts.hour, minute=parts.minute, second=parts.second)


def _ref_past_skip(parts: datetime, skip: list[str] | None, tz: ZoneInfo) -> datetime:
    guard = 0
    while skip and _REF_WEEKDAYS[parts.weekday()] in skip and guard < 7:
        parts = _ref_add_days(parts, 1, tz)
        guard += 1
    return parts


def _ref_at(anchor: datetime, timing: dict[str, Any]) -> float:
    tz = _ref_zone(timing.get("tz"))
    hour, minute = _ref_clock(timing["clock"])
    skip = timing.get("skip")
    parts = _ref_parts(anchor, tz)
    if timing.get("dayOffset", 0) > 0:
        parts = _ref_add_days(parts, timing["dayOffset"], tz)
    else:
        today = _ref_local_to_utc(_ref_past_skip(parts.replace(hour=hour, minute=minute, second=0), skip, tz), tz)
        if today > anchor:
            return (today - anchor).total_seconds() * 1000
        parts = _ref_add_days(parts, 1, tz)
    target = _ref_local_to_utc(_ref_past_skip(parts.replace(hour=hour, minute=minute, second=0), skip, tz), tz)
    return (target - anchor).total_seconds() * 1000


def _ref_every(anchor: datetime, timing: dict[str, Any], timeout_ms: float | None, max_fires: int) -> list[float]:
    interval = _ref_ms(timing["interval"])
    bounds = [b for b in (None if "until" not in timing else _ref_ms(timing["until"]), timeout_ms) if b is not None]
    max_ms = min(bounds) if bounds else None
    count = timing.get("count", math.inf)
    fires: list[float] = []
    if timing.get("at") is not None:  # the interval is ignored: one calendar day per step
        tz = _ref_zone(timing.get("tz"))
        hour, minute = _ref_clock(timing["at"])
        skip = timing.get("skip")
        parts = _ref_parts(anchor, tz)
        first = _ref_local_to_utc(_ref_past_skip(parts.replace(hour=hour, minute=minute, second=0), skip, tz), tz)
        if first <= anchor:
            parts = _ref_add_days(parts, 1, tz)
        while len(fires) < count:
            candidate = _ref_past_skip(parts.replace(hour=hour, minute=minute, second=0), skip, tz)
            at_ms = (_ref_local_to_utc(candidate, tz) - anchor).total_seconds() * 1000
            if max_ms is not None and at_ms >= max_ms:
                break
            if at_ms >= 0:
                fires.append(at_ms)
            parts = _ref_add_days(parts, 1, tz)  # from the un-skipped day
            if len(fires) > max_fires:
                raise ReferenceWouldNotTerminate
        return fires
    i = 1
    while len(fires) < count:  # tz and skip ignored
        at_ms = interval * i
        if max_ms is not None and at_ms >= max_ms:
            break
        fires.append(at_ms)
        i += 1
        if len(fires) > max_fires:
            raise ReferenceWouldNotTerminate
    return fires


def _reference_expand(
    entries: list[dict[str, Any]], anchor: datetime, timeout_ms: float | None = None, *, max_fires: int = 10_000
) -> list[tuple[float, int]]:
    fires: list[tuple[float, int]] = []
    for index, entry in enumerate(entries):
        timing = entry["timing"]
        if timing["kind"] == "delay":
            times = [_ref_ms(timing["after"])]
        elif timing["kind"] == "at":
            times = [_ref_at(anchor, timing)]
        else:
            times = _ref_every(anchor, timing, timeout_ms, max_fires)
        fires += [(ms / 1000, index) for ms in times if ms >= 0 and (timeout_ms is None or ms < timeout_ms)]
    return sorted(fires)


# --- helpers -------------------------------------------------------------------------------------------------
def fires(entries: Sequence[ReminderEntry], anchor: datetime, timeout: float | None = None) -> list[tuple[float, int]]:
    return [(fire.at, fire.index) for fire in expand_schedule(entries, anchor, timeout)]


def local(anchor: datetime, at: float, tz: ZoneInfo) -> datetime:
    return (anchor.astimezone(UTC) + timedelta(seconds=at)).astimezone(tz)


def wall(anchor: datetime, pairs: list[tuple[float, int]], tz: ZoneInfo) -> list[str]:
    return [local(anchor, at, tz).strftime("%a %m-%d %H:%M %Z") for at, _ in pairs]


SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
FRIDAY_AFTER_7 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


# --- REF §10.1 regressions: each fails on the reference's algorithm ----------------------------------------------
def test_ref_10_1_1_unbounded_repeats_are_lazy() -> None:
    for timing in (
        {"kind": "every", "interval": "1h"},
        {"kind": "every", "interval": "1d", "at": "09:00", "tz": "UTC"},
        {"kind": "every", "interval": "1d", "at": "07:00", "tz": "UTC", "skip": ["sat", "sun"]},
    ):
        with pytest.raises(ReferenceWouldNotTerminate):
            _reference_expand([{"timing": timing}], SATURDAY, max_fires=2_000)
    unbounded = [remind.every("1s"), remind.every("1h"), remind.daily_at("09:00"), remind.weekdays_at("07:00")]
    first = list(islice(expand_schedule(unbounded, SATURDAY), 10_000))
    assert len(first) == 10_000
    assert first[:3] == [Fire(1.0, 0, unbounded[0]), Fire(2.0, 0, unbounded[0]), Fire(3.0, 0, unbounded[0])]
    # Far down an unbounded series, a daily entry is still there, merged in order.
    far = list(islice(expand_schedule(unbounded[2:], SATURDAY), 1_000))
    assert far[-1].at > 365 * DAY


@pytest.mark.parametrize("anchor", [SATURDAY, FRIDAY_AFTER_7], ids=["saturday", "friday-after-7"])
def test_ref_10_1_2_weekdays_at_fires_each_weekday_once(anchor: datetime) -> None:
    reference = _reference_expand(
        [{"timing": {"kind": "every", "interval": "1d", "at": "07:00", "until": "7d", "skip": ["sat", "sun"]}}], anchor
    )
    reference_days = Counter(wall(anchor, reference, ZoneInfo("UTC")))
    assert reference_days["Mon 11-30 07:00 UTC"] == 3  # the bug: Saturday and Sunday pile onto Monday
    ours = fires([remind.weekdays_at("07:00", for_="7d")], anchor)
    assert wall(anchor, ours, ZoneInfo("UTC")) == [
        "Mon 11-30 07:00 UTC",
        "Tue 12-01 07:00 UTC",
        "Wed 12-02 07:00 UTC",
        "Thu 12-03 07:00 UTC",
        "Fri 12-04 07:00 UTC",
    ]


def test_ref_10_1_2_count_counts_real_fires() -> None:
    reference = _reference_expand(
        [{"timing": {"kind": "every", "interval": "1d", "at": "07:00", "count": 3, "skip": ["sat", "sun"]}}], SATURDAY
    )
    assert wall(SATURDAY, reference, ZoneInfo("UTC")) == ["Mon 11-30 07:00 UTC"] * 3
    ours = fires([remind.weekdays_at("07:00", count=3)], SATURDAY)
    assert wall(SATURDAY, ours, ZoneInfo("UTC")) == [
        "Mon 11-30 07:00 UTC",
        "Tue 12-01 07:00 UTC",
        "Wed 12-02 07:00 UTC",
    ]


def test_ref_10_1_3_every_with_at_honours_the_interval() -> None:
    reference = _reference_expand(
        [{"timing": {"kind": "every", "interval": "2d", "at": "09:00", "count": 4}}], SATURDAY
    )
    assert wall(SATURDAY, reference, ZoneInfo("UTC"))[:2] == ["Sun 11-29 09:00 UTC", "Mon 11-30 09:00 UTC"]  # daily
    ours = fires([remind.every("2d", at="09:00", count=4)], SATURDAY)
    assert wall(SATURDAY, ours, ZoneInfo("UTC")) == [
        "Sun 11-29 09:00 UTC",
        "Tue 12-01 09:00 UTC",
        "Thu 12-03 09:00 UTC",
        "Sat 12-05 09:00 UTC",
    ]
    weekly = fires([remind.every("1w", at="09:00", count=2, tz="Europe/Berlin")], SATURDAY)
    assert wall(SATURDAY, weekly, BERLIN) == ["Sun 11-29 09:00 CET", "Sun 12-06 09:00 CET"]


def test_ref_10_1_4_every_without_at_honours_tz_and_skip() -> None:
    reference = _reference_expand(
        [{"timing": {"kind": "every", "interval": "1d", "count": 5, "skip": ["sat", "sun"], "tz": "UTC"}}],
        FRIDAY_AFTER_7,
    )
    assert "Sat 11-28 10:00 UTC" in wall(FRIDAY_AFTER_7, reference, ZoneInfo("UTC"))  # skip ignored
    ours = fires([remind.every("1d", count=5, skip=["sat", "sun"])], FRIDAY_AFTER_7)
    assert wall(FRIDAY_AFTER_7, ours, ZoneInfo("UTC")) == [
        "Mon 11-30 10:00 UTC",
        "Tue 12-01 10:00 UTC",
        "Wed 12-02 10:00 UTC",
        "Thu 12-03 10:00 UTC",
        "Fri 12-04 10:00 UTC",
    ]
    # The skip day is the entry's tz's: the first fire, Saturday 14:00 UTC, is already Sunday 03:00 in Auckland.
    anchor = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    ours = fires([remind.every("6h", count=3, tz="Pacific/Auckland", skip=["sun"])], anchor)
    auckland = ZoneInfo("Pacific/Auckland")
    assert wall(anchor, ours, auckland) == ["Mon 11-30 03:00 NZDT", "Mon 11-30 09:00 NZDT", "Mon 11-30 15:00 NZDT"]
    assert all(local(anchor, at, auckland).weekday() != 6 for at, _ in ours)
    # A one-off at / tomorrow_at moves to the next allowed day in its tz.
    assert wall(SATURDAY, fires([remind.at("09:00", skip=["sat", "sun"])], SATURDAY), ZoneInfo("UTC")) == [
        "Mon 11-30 09:00 UTC"
    ]
    assert wall(
        FRIDAY_AFTER_7, fires([remind.tomorrow_at("08:00", skip=["sat"])], FRIDAY_AFTER_7), ZoneInfo("UTC")
    ) == ["Sun 11-29 08:00 UTC"]


def test_ref_10_1_5_a_timeout_of_zero_or_less_is_an_error_not_no_timeout() -> None:
    entry = [remind.every("1h", count=3)]
    for bad in (0, -1.0, math.nan, math.inf, True, "1h"):
        with pytest.raises(ValidationError, match="Invalid timeout"):
            expand_schedule(entry, SATURDAY, bad)  # type: ignore[arg-type]
    # The reference's schedule treats a negative "timeout" as clipping everything (and its client as no timeout).
    assert _reference_expand([{"timing": {"kind": "every", "interval": "1h", "count": 3}}], SATURDAY, -1) == []


def test_ref_10_1_6_invalid_tz_and_clock_fail_at_build_time_not_at_wait_time() -> None:
    # The reference's builders store anything; the error surfaces only when the schedule is expanded, which its
    # client does after the request was created and delivered (in the port, "building" is writing the dict).
    with pytest.raises(Exception, match="Mars"):
        _reference_expand([{"timing": {"kind": "at", "clock": "09:00", "tz": "Mars/Olympus"}}], SATURDAY)
    with pytest.raises(ValueError, match="Invalid clock time"):
        _reference_expand([{"timing": {"kind": "every", "interval": "1d", "at": "25:00", "count": 1}}], SATURDAY)
    # Ours: the builder raises, so no request is ever created with a broken schedule.
    with pytest.raises(ValidationError, match="Unknown time zone"):
        remind.at("09:00", tz="Mars/Olympus")
    with pytest.raises(ValidationError, match="Invalid clock time"):
        remind.daily_at("25:00", count=1)


def test_ref_10_1_7_the_schedule_is_a_pure_function_of_its_anchor(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = [remind.daily_at("09:00", count=2)]
    ref_entry = [{"timing": {"kind": "every", "interval": "1d", "at": "09:00", "count": 2}}]
    monkeypatch.delenv("TZ", raising=False)
    reference_utc, ours_utc = _reference_expand(ref_entry, SATURDAY), fires(entry, SATURDAY)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert _reference_expand(ref_entry, SATURDAY) != reference_utc  # the reference reads the environment
    assert fires(entry, SATURDAY) == ours_utc  # ours: default UTC, whatever the host says
    # The same instant written in another zone is the same anchor; expanding twice gives the same fires.
    assert fires(entry, SATURDAY.astimezone(NY)) == ours_utc == fires(entry, SATURDAY)
    with pytest.raises(ValidationError, match="timezone-aware"):
        expand_schedule(entry, datetime(2026, 11, 28, 10, 0))


# --- DST: gaps and folds -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tz", "day", "clock", "expected_utc", "expected_local"),
    [
        # 02:00 EST -> 03:00 EDT: 02:30 fires at 03:30 EDT (offset before the gap, RFC 5545).
        ("America/New_York", datetime(2026, 3, 8), "02:30", datetime(2026, 3, 8, 7, 30), "03:30 EDT"),
        # 02:00 CET -> 03:00 CEST.
        ("Europe/Berlin", datetime(2026, 3, 29), "02:30", datetime(2026, 3, 29, 1, 30), "03:30 CEST"),
        # Lord Howe moves by 30 minutes: 02:00 -> 02:30 (+10:30 -> +11:00).
        ("Australia/Lord_Howe", datetime(2026, 10, 4), "02:15", datetime(2026, 10, 3, 15, 45), "02:45 +11"),
    ],
)
def test_a_time_in_a_gap_fires_at_the_offset_before_the_gap(
    tz: str, day: datetime, clock: str, expected_utc: datetime, expected_local: str
) -> None:
    zone = ZoneInfo(tz)
    anchor = (day - timedelta(hours=12)).replace(tzinfo=zone)
    for entry in (remind.at(clock, tz=tz), remind.daily_at(clock, tz=tz, count=1), remind.tomorrow_at(clock, tz=tz)):
        (at, _), *_ = fires([entry], anchor)
        assert anchor.astimezone(UTC) + timedelta(seconds=at) == expected_utc.replace(tzinfo=UTC)
        assert local(anchor, at, zone).strftime("%H:%M %Z") == expected_local


def test_new_york_gap_reference_fires_an_hour_early() -> None:
    anchor = datetime(2026, 3, 7, 12, 0, tzinfo=NY)
    ((at, _),) = _reference_expand(
        [{"timing": {"kind": "at", "clock": "02:30", "tz": "America/New_York", "dayOffset": 1}}], anchor
    )
    assert local(anchor, at, NY).strftime("%H:%M %Z") == "01:30 EST"
    ((ours, _),) = fires([remind.tomorrow_at("02:30", tz="America/New_York")], anchor)
    assert local(anchor, ours, NY).strftime("%H:%M %Z") == "03:30 EDT"


@pytest.mark.parametrize(
    ("tz", "day", "clock", "first", "second_offset"),
    [
        # 02:00 EDT -> 01:00 EST: 01:30 happens at 05:30Z and again at 06:30Z.
        ("America/New_York", datetime(2026, 11, 1), "01:30", datetime(2026, 11, 1, 5, 30), HOUR),
        # 03:00 CEST -> 02:00 CET: 02:30 happens at 00:30Z and 01:30Z.
        ("Europe/Berlin", datetime(2026, 10, 25), "02:30", datetime(2026, 10, 25, 0, 30), HOUR),
        # 02:00 +11 -> 01:30 +10:30: 01:45 happens at 14:45Z and 15:15Z the day before in UTC.
        ("Australia/Lord_Howe", datetime(2026, 4, 5), "01:45", datetime(2026, 4, 4, 14, 45), HOUR / 2),
    ],
)
def test_a_time_in_a_fold_fires_once_at_its_first_occurrence(
    tz: str, day: datetime, clock: str, first: datetime, second_offset: float
) -> None:
    zone = ZoneInfo(tz)
    anchor = (day - timedelta(hours=12)).replace(tzinfo=zone)
    daily = fires([remind.daily_at(clock, tz=tz, count=3)], anchor)
    instants = [anchor.astimezone(UTC) + timedelta(seconds=at) for at, _ in daily]
    assert instants[0] == first.replace(tzinfo=UTC)
    assert instants[1] - instants[0] == timedelta(days=1, seconds=second_offset)  # not the fold's second occurrence
    assert [local(anchor, at, zone).strftime("%H:%M") for at, _ in daily] == [clock] * 3
    # An anchor between the two occurrences: the first has passed, so the next fire is tomorrow's, not the repeat.
    between = first.replace(tzinfo=UTC) + timedelta(seconds=second_offset / 2)
    ((at, _),) = fires([remind.at(clock, tz=tz)], between)
    assert between + timedelta(seconds=at) == first.replace(tzinfo=UTC) + timedelta(days=1, seconds=second_offset)


def test_calendar_days_are_stepped_on_local_dates_across_dst() -> None:
    anchor = datetime(2026, 3, 27, 12, 0, tzinfo=BERLIN)
    daily = fires([remind.daily_at("09:00", tz="Europe/Berlin", count=4)], anchor)
    assert wall(anchor, daily, BERLIN) == [
        "Sat 03-28 09:00 CET",
        "Sun 03-29 09:00 CEST",
        "Mon 03-30 09:00 CEST",
        "Tue 03-31 09:00 CEST",
    ]
    assert daily[1][0] - daily[0][0] == 23 * HOUR
    every_other = fires(
        [remind.every("2d", at="09:00", tz="America/New_York", count=3)], datetime(2026, 10, 30, tzinfo=NY)
    )
    assert wall(datetime(2026, 10, 30, tzinfo=NY), every_other, NY) == [
        "Fri 10-30 09:00 EDT",
        "Sun 11-01 09:00 EST",
        "Tue 11-03 09:00 EST",
    ]
    # `every` without `at` counts elapsed time: one hour apart across the change, whatever the wall clock says.
    hourly = fires(
        [remind.every("1h", count=4, tz="Europe/Berlin", skip=["mon"])], datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    )
    assert [at for at, _ in hourly] == [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR]


def test_a_day_that_does_not_exist_fires_once() -> None:
    # Samoa skipped 2011-12-30 (from -10 to +14): the 09:00 of the missing day is the next day's 09:00.
    apia = ZoneInfo("Pacific/Apia")
    anchor = datetime(2011, 12, 28, 12, 0, tzinfo=apia)
    daily = fires([remind.daily_at("09:00", tz="Pacific/Apia", count=3)], anchor)
    assert wall(anchor, daily, apia) == ["Thu 12-29 09:00 -10", "Sat 12-31 09:00 +14", "Sun 01-01 09:00 +14"]


# --- the rest of the rules -----------------------------------------------------------------------------------
def test_at_is_today_if_still_ahead_else_tomorrow() -> None:
    anchor = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert fires([remind.at("09:01")], anchor) == [(60.0, 0)]
    assert fires([remind.at("09:00")], anchor) == [(DAY, 0)]  # a clock equal to now is tomorrow
    assert fires([remind.at("08:59")], anchor) == [(DAY - 60, 0)]
    assert fires([remind.tomorrow_at("09:01")], anchor) == [(DAY + 60, 0)]
    assert fires([remind.at("09:00", tz="Europe/Berlin")], anchor) == [(23 * HOUR, 0)]  # 10:00 there already


def test_fires_are_merged_in_time_then_index_order_and_clipped_to_the_timeout() -> None:
    anchor = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    sample: list[ReminderEntry] = [
        remind.every("30m"),
        escalate.to("ops").after("1h"),
        remind.at("10:00"),
        remind.after("2h"),
    ]
    got = fires(sample, anchor, 2 * HOUR)
    assert got == [(1800.0, 0), (3600.0, 0), (3600.0, 1), (3600.0, 2), (5400.0, 0)]  # 2h excluded: timeout wins ties
    assert fires(sample, anchor, 2 * HOUR + 0.001)[-2:] == [(7200.0, 0), (7200.0, 3)]
    assert list(expand_schedule([], anchor)) == []


def test_until_is_exclusive_and_count_stops() -> None:
    anchor = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert [at for at, _ in fires([remind.every("1h", until="3h")], anchor)] == [HOUR, 2 * HOUR]
    assert [at for at, _ in fires([remind.every("1h", count=2, until="10h")], anchor)] == [HOUR, 2 * HOUR]
    assert [at for at, _ in fires([remind.daily_at("09:00", until="2d")], anchor)] == [DAY]


def test_repeats_that_only_land_on_skipped_days_end() -> None:
    anchor = SATURDAY  # a weekly series started on Saturday, skipping Saturdays, can never fire
    assert fires([remind.every("7d", at="10:30", skip=["sat"])], anchor) == []
    assert fires([remind.every("2w", skip=["sat"])], anchor) == []  # ends after MAX_SKIPPED_RUN dropped fires
    assert MAX_SKIPPED_RUN >= 100
    # A 7-day elapsed series in New York lands on Saturday 00:30 until the clocks go back, then on Friday 23:30.
    anchor = datetime(2026, 10, 17, 4, 30, tzinfo=UTC)
    drifting = fires([remind.every("7d", count=2, tz="America/New_York", skip=["sat"])], anchor)
    assert wall(anchor, drifting, NY) == ["Fri 11-06 23:30 EST", "Fri 11-13 23:30 EST"]


def test_arguments_are_checked_at_call_time() -> None:
    with pytest.raises(ValidationError, match="remind"):
        expand_schedule(["1h"], SATURDAY)  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="timezone-aware"):
        expand_schedule([remind.after("1h")], "2026-11-28T10:00:00Z")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="out of range"):
        expand_schedule([remind.after("1h")], datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")))
    one_shot = iter([remind.after("1h"), remind.after("2h")])
    assert [fire.at for fire in expand_schedule(one_shot, SATURDAY)] == [HOUR, 2 * HOUR]  # type: ignore[arg-type]
    assert list(expand_schedule([remind.after("1h")], SATURDAY, 1)) == []
    assert list(expand_schedule([remind.after("1h")], SATURDAY, HOUR + 1)) == [Fire(HOUR, 0, remind.after("1h"))]


def test_fires_past_year_9999_are_not_produced() -> None:
    late = datetime(9999, 12, 30, tzinfo=UTC)  # a Thursday; datetime ends with Friday 9999-12-31
    assert fires([remind.daily_at("09:00")], late) == [(9 * HOUR, 0), (33 * HOUR, 0)]
    assert fires([remind.every("1d", skip=["mon"])], late) == [(DAY, 0)]
    assert fires([remind.every("1d", skip=["fri"])], late) == []
    assert fires([remind.at("09:00", skip=["thu"])], late) == [(33 * HOUR, 0)]
    assert fires([remind.at("09:00", skip=["thu", "fri"])], late) == []
    assert len(list(islice(expand_schedule([remind.every("1d")], late), 5))) == 5  # elapsed time has no calendar


# --- properties ------------------------------------------------------------------------------------------------
anchors = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2090, 1, 1),
    timezones=st.sampled_from([ZoneInfo(z or "UTC") for z in ZONES]),
)
timeouts = st.none() | st.floats(min_value=1.0, max_value=90 * DAY)
N = 300


def _take(entries: list[ReminderEntry], anchor: datetime, timeout: float | None) -> list[Fire]:
    return list(islice(expand_schedule(entries, anchor, timeout), N))


@settings(max_examples=150, deadline=None)
@given(st.lists(entries(), max_size=6), anchors, timeouts)
def test_properties(sample: list[ReminderEntry], anchor: datetime, timeout: float | None) -> None:
    got = _take(sample, anchor, timeout)
    keys = [(fire.at, fire.index) for fire in got]
    assert keys == sorted(keys)  # sorted by (at, index)
    assert len(set(keys)) == len(keys)  # no duplicate (at, index)
    assert all(fire.at > 0 for fire in got)
    assert all(fire.entry is sample[fire.index] for fire in got)
    if timeout is not None:
        assert all(fire.at < timeout for fire in got)
    per_entry = Counter(fire.index for fire in got)
    for index, entry in enumerate(sample):
        timing = entry.timing
        mine = [fire.at for fire in got if fire.index == index]
        if isinstance(timing, At | Every) and timing.skip:
            tz = ZoneInfo(timing.tz or "UTC")
            skipped = {("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(day) for day in timing.skip}
            assert all(local(anchor, at, tz).weekday() not in skipped for at in mine)  # in the entry's tz
        if isinstance(timing, Every):
            if timing.count is not None:
                assert per_entry[index] <= timing.count
            if timing.until is not None:
                assert all(at < timing.until for at in mine)
            if timing.at is None:  # elapsed multiples of the interval
                assert all(abs(at / timing.interval - round(at / timing.interval)) < 1e-6 for at in mine)
            else:  # at most once per local calendar day, at the clock (or after it, in a gap)
                tz = ZoneInfo(timing.tz or "UTC")
                days = [local(anchor, at, tz).date() for at in mine]
                assert len(set(days)) == len(days)
        else:
            assert len(mine) <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(entries(bounded=True), min_size=1, max_size=4), anchors)
def test_bounded_series_are_complete(sample: list[ReminderEntry], anchor: datetime) -> None:
    """A count with no skip and no other bound yields exactly `count` fires; a timeout is a prefix of no timeout."""
    everything = list(expand_schedule(sample, anchor)) if all(_bounded(e) for e in sample) else None
    for index, entry in enumerate(sample):
        timing = entry.timing
        if (
            everything is not None
            and isinstance(timing, Every)
            and timing.count
            and not timing.skip
            and not timing.until
        ):
            assert sum(1 for fire in everything if fire.index == index) == timing.count
    if everything is not None:
        # The merge is the sorted union of each entry's own series.
        singles = [(fire.at, index) for index, e in enumerate(sample) for fire in expand_schedule([e], anchor)]
        assert [(fire.at, fire.index) for fire in everything] == sorted(singles)
        cut = everything[len(everything) // 2].at if everything else 1.0
        assert list(expand_schedule(sample, anchor, cut)) == [fire for fire in everything if fire.at < cut]


def _bounded(entry: ReminderEntry) -> bool:
    timing = entry.timing
    return not isinstance(timing, Every) or timing.count is not None or timing.until is not None


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5_000), anchors)
def test_lazy_unbounded_every_second(n: int, anchor: datetime) -> None:
    taken = list(islice(expand_schedule([remind.every("1s"), remind.daily_at("00:00")], anchor), n))
    assert len(taken) == n
    assert [f.at for f in taken if f.index == 0] == [float(i) for i in range(1, 1 + sum(f.index == 0 for f in taken))]


def test_iterator_type() -> None:
    result = expand_schedule([remind.after("1h")], SATURDAY)
    assert isinstance(result, Iterator)
