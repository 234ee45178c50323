"""The reminder DSL: what each builder produces, build-time validation (REF §10.1 #6), bodies and the JSON form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reminder_strategies import entries

import hitl_streams
from hitl_streams.errors import ValidationError
from hitl_streams.reminders import (
    DEFAULT_ESCALATE_MESSAGE,
    DEFAULT_REMIND_MESSAGE,
    MAX_ENTRIES,
    At,
    Delay,
    EscalateEntry,
    Every,
    RemindEntry,
    ReminderEntry,
    decode_reminders,
    encode_reminders,
    escalate,
    remind,
)
from hitl_streams.schedule import expand_schedule


# --- builders --------------------------------------------------------------------------------------------
def test_after() -> None:
    assert remind.after("30m") == RemindEntry(Delay(after=1800.0))
    assert remind.after(timedelta(hours=1), message="ping") == RemindEntry(Delay(after=3600.0), "ping")


def test_at_and_tomorrow_at_normalize_clock_tz_and_skip() -> None:
    entry = remind.at("9:05", tz=ZoneInfo("Europe/Berlin"), skip=["Sun", "sat", "sun"])
    assert entry.timing == At(clock="09:05", tz="Europe/Berlin", skip=("sat", "sun"))
    assert remind.tomorrow_at("23:59").timing == At(clock="23:59", day_offset=1)
    assert remind.at("07:00", skip="sun").timing == At(clock="07:00", skip=("sun",))


def test_every_daily_at_and_weekdays_at() -> None:
    assert remind.every("1h", count=3).timing == Every(interval=3600.0, count=3)
    assert remind.every("2d", at="09:00", until="14d").timing == Every(
        interval=172_800.0, at="09:00", until=1_209_600.0
    )
    assert remind.every("1d", for_="7d").timing == Every(interval=86_400.0, until=604_800.0)
    assert remind.daily_at("17:30", tz="America/New_York").timing == Every(
        interval=86_400.0, at="17:30", tz="America/New_York"
    )
    assert remind.weekdays_at("07:00").timing == Every(interval=86_400.0, at="07:00", skip=("sat", "sun"))
    assert remind.weekdays_at("07:00", skip=("fri",)).timing.skip == ("fri",)  # type: ignore[union-attr]


def test_escalate_builders_carry_channel_and_mode() -> None:
    entry = escalate.to("managers", mode="redeliver").after("1d", message="Still waiting")
    assert entry == EscalateEntry(Delay(after=86_400.0), "managers", "Still waiting", "redeliver")
    builder = escalate.to("ops")
    assert builder.weekdays_at("08:00").mode == "notify"
    assert builder.every("1h", count=2).channel == "ops"
    assert isinstance(builder.daily_at("08:00", tz="UTC"), EscalateEntry)


def test_remind_bodies_use_the_reference_defaults() -> None:
    assert remind.after("1h").remind_body() == {"kind": "remind", "message": DEFAULT_REMIND_MESSAGE}
    assert remind.after("1h", message="Hi").remind_body() == {"kind": "remind", "message": "Hi"}
    assert escalate.to("ops").after("1h").remind_body() == {
        "kind": "escalate",
        "channel": "ops",
        "message": DEFAULT_ESCALATE_MESSAGE,
        "mode": "notify",
    }
    assert DEFAULT_REMIND_MESSAGE == "Reminder: approval still pending"
    assert DEFAULT_ESCALATE_MESSAGE == "Escalation: approval still pending"


def test_reexported_from_the_package() -> None:
    assert hitl_streams.remind is remind
    assert hitl_streams.escalate is escalate
    assert {"remind", "escalate", "parse_duration"} <= set(hitl_streams.__all__)


# --- build-time validation (REF §10.1 #6) ------------------------------------------------------------------
@pytest.mark.parametrize(
    "clock",
    ["24:00", "7", "07:60", "07:5", "7am", "", " 07:00", "007:00", "07:00:00", "\u0660\u0667:\u0660\u0660", "07:00\n"],
)
def test_bad_clock_raises_at_build_time(clock: str) -> None:
    with pytest.raises(ValidationError) as info:
        remind.at(clock)
    assert str(info.value) == f'Invalid clock time: "{clock}" (expected e.g. "07:00")'
    for build in (remind.tomorrow_at, remind.daily_at, remind.weekdays_at, escalate.to("ops").at):
        with pytest.raises(ValidationError, match="Invalid clock time"):
            build(clock)
    with pytest.raises(ValidationError, match="Invalid clock time"):
        remind.every("1d", at=clock)


@pytest.mark.parametrize(
    "tz", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "Europe/" + "x" * 100, "localtime", "right/UTC"]
)
def test_unknown_or_host_dependent_tz_raises_at_build_time(tz: str) -> None:
    with pytest.raises(ValidationError, match=r"[tT]ime zone"):
        remind.at("09:00", tz=tz)
    with pytest.raises(ValidationError, match=r"[tT]ime zone"):
        remind.every("1h", tz=tz)


def test_bad_weekdays_raise_at_build_time() -> None:
    with pytest.raises(ValidationError, match='Invalid weekday: "saturday"'):
        remind.weekdays_at("07:00", skip=["saturday"])
    with pytest.raises(ValidationError, match="Invalid weekday"):
        remind.at("07:00", skip=[6])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="skip every day"):
        remind.daily_at("07:00", skip=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])


def test_bad_escalations_raise_at_build_time() -> None:
    with pytest.raises(ValidationError, match="needs a channel"):
        escalate.to("")
    with pytest.raises(ValidationError, match="needs a channel"):
        escalate.to(None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="mode must be"):
        escalate.to("ops", mode="page")  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, -1, True, 1.5, "3"])
def test_bad_count_raises(count: object) -> None:
    with pytest.raises(ValidationError, match="count must be"):
        remind.every("1h", count=count)  # type: ignore[arg-type]


def test_other_every_mistakes_raise() -> None:
    with pytest.raises(ValidationError, match="whole number of days"):
        remind.every("12h", at="09:00")
    with pytest.raises(ValidationError, match="not both"):
        remind.every("1h", until="1d", for_="2d")
    with pytest.raises(ValidationError, match="Invalid until"):
        remind.every("1h", until="0s")
    with pytest.raises(ValidationError, match="Invalid reminder interval"):
        remind.every("-1h")
    with pytest.raises(ValidationError, match="Invalid reminder delay"):
        remind.after(0)
    with pytest.raises(ValidationError, match="message must be"):
        remind.after("1h", message=42)  # type: ignore[arg-type]


def test_structs_built_directly_are_validated_too() -> None:
    with pytest.raises(ValidationError):
        RemindEntry(Delay(after=-1))
    with pytest.raises(ValidationError):
        At(clock="25:00")
    with pytest.raises(ValidationError):
        At(clock="09:00", day_offset=-1)
    with pytest.raises(ValidationError):
        Every(interval=60, count=0)
    with pytest.raises(ValidationError, match="timing must be"):
        RemindEntry("1h")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EscalateEntry(Delay(after=1), "")


# --- JSON form ---------------------------------------------------------------------------------------------
SAMPLE: list[ReminderEntry] = [
    remind.after("30m"),
    remind.at("09:00", tz="Europe/Berlin", skip=["sun"], message="Morning"),
    remind.tomorrow_at("08:15"),
    remind.every("1h", count=3),
    remind.every("2d", at="09:00", until="14d", tz="America/New_York"),
    remind.weekdays_at("07:00"),
    escalate.to("ops", mode="redeliver").after("1d", message="Still waiting"),
    escalate.to("managers").daily_at("17:00", count=2),
]


def test_encode_shape() -> None:
    encoded = encode_reminders(SAMPLE)
    assert json.loads(json.dumps(encoded)) == encoded  # plain JSON types only
    assert encoded[0] == {"kind": "remind", "timing": {"kind": "delay", "after": 1800.0}}
    assert encoded[1] == {
        "kind": "remind",
        "timing": {"kind": "at", "clock": "09:00", "tz": "Europe/Berlin", "skip": ["sun"]},
        "message": "Morning",
    }
    assert encoded[2]["timing"] == {"kind": "at", "clock": "08:15", "dayOffset": 1}
    assert encoded[4]["timing"] == {
        "kind": "every",
        "interval": 172_800.0,
        "at": "09:00",
        "until": 1_209_600.0,
        "tz": "America/New_York",
    }
    assert encoded[6] == {
        "kind": "escalate",
        "timing": {"kind": "delay", "after": 86_400.0},
        "channel": "ops",
        "message": "Still waiting",
        "mode": "redeliver",
    }
    assert encoded[7]["channel"] == "managers"
    assert "mode" not in encoded[7]


def test_decode_round_trip_and_string_durations() -> None:
    assert decode_reminders(encode_reminders(SAMPLE)) == SAMPLE
    assert decode_reminders(json.loads(json.dumps(encode_reminders(SAMPLE)))) == SAMPLE
    decoded = decode_reminders(
        [
            {"kind": "remind", "timing": {"kind": "delay", "after": "300ms"}},
            {"kind": "escalate", "channel": "ops", "timing": {"kind": "every", "interval": 60, "until": "1h"}},
        ]
    )
    assert decoded == [remind.after(0.3), escalate.to("ops").every("1m", until="1h")]
    assert decode_reminders([]) == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("not a list", "Invalid reminders"),
        ([{"timing": {"kind": "delay", "after": 1}}], "kind"),
        ([{"kind": "nag", "timing": {"kind": "delay", "after": 1}}], "Invalid reminders"),
        ([{"kind": "remind"}], "timing"),
        ([{"kind": "remind", "timing": {"kind": "delay", "after": 1}, "extra": 1}], "extra"),
        ([{"kind": "remind", "timing": {"kind": "delay", "after": True}}], "Invalid reminders"),
        ([{"kind": "remind", "timing": {"kind": "delay", "after": -1}}], "entry 0"),
        ([{"kind": "remind", "timing": {"kind": "delay", "after": "soon"}}], 'Invalid after: "soon"'),
        ([{"kind": "remind", "timing": {"kind": "at", "clock": "25:00"}}], "Invalid clock time"),
        ([{"kind": "remind", "timing": {"kind": "at", "clock": "09:00", "tz": "Nowhere/Land"}}], "Unknown time zone"),
        ([{"kind": "remind", "timing": {"kind": "at", "clock": "09:00", "skip": ["sat", "sunday"]}}], "weekday"),
        ([{"kind": "remind", "timing": {"kind": "at", "clock": "09:00", "dayOffset": 1000}}], "dayOffset"),
        ([{"kind": "remind", "timing": {"kind": "every", "interval": "1h", "count": 0}}], "count"),
        ([{"kind": "remind", "timing": {"kind": "every", "interval": "1h", "count": 1.0}}], "Invalid reminders"),
        ([{"kind": "escalate", "timing": {"kind": "delay", "after": 1}}], "channel"),
        ([{"kind": "escalate", "channel": "", "timing": {"kind": "delay", "after": 1}}], "needs a channel"),
        ([{"kind": "escalate", "channel": "x", "mode": "page", "timing": {"kind": "delay", "after": 1}}], "mode"),
        ([{"kind": "remind", "message": "m" * 10_001, "timing": {"kind": "delay", "after": 1}}], "length"),
        ([{"kind": "remind", "timing": {"kind": "at", "clock": "09:00", "skip": ["mon"] * 8}}], "length"),
        ([{"kind": "remind", "timing": {"kind": "delay", "after": "1" * 33 + "s"}}], "length"),
        ([{"kind": "remind", "timing": {"kind": "delay", "after": 1}}] * (MAX_ENTRIES + 1), "length"),
    ],
)
def test_decode_rejects(payload: Any, fragment: str) -> None:
    with pytest.raises(ValidationError, match="Invalid reminders") as info:
        decode_reminders(payload)
    assert fragment in str(info.value)


def test_decode_accepts_the_maximum() -> None:
    payload = [{"kind": "remind", "timing": {"kind": "delay", "after": i + 1}} for i in range(MAX_ENTRIES)]
    assert len(decode_reminders(payload)) == MAX_ENTRIES


def test_encode_rejects_non_entries() -> None:
    with pytest.raises(ValidationError):
        encode_reminders([{"kind": "remind"}])  # type: ignore[list-item]


# --- properties ----------------------------------------------------------------------------------------------
@given(st.lists(entries(), max_size=8))
def test_json_round_trip(sample: list[ReminderEntry]) -> None:
    wire = json.loads(json.dumps(encode_reminders(sample)))
    assert decode_reminders(wire) == sample
    assert msgspec.json.decode(msgspec.json.encode(sample), type=list[ReminderEntry]) == sample


@settings(deadline=None)
@given(st.lists(entries(), max_size=4))
def test_decoded_entries_expand_like_the_originals(sample: list[ReminderEntry]) -> None:
    anchor = datetime(2026, 3, 27, 22, 30, tzinfo=UTC)
    decoded = decode_reminders(encode_reminders(sample))
    assert list(islice(expand_schedule(decoded, anchor), 500)) == list(islice(expand_schedule(sample, anchor), 500))
