"""The reminder and escalation DSL of the workflow side (REF §6.6, SPEC §11), validated when it is built.

    remind.after("4h")                                  # once, 4 h after the wait starts
    remind.at("09:00", tz="Europe/Berlin")              # the next 09:00 there (today if still ahead)
    remind.tomorrow_at("09:00")                         # 09:00 tomorrow (UTC unless tz= is given)
    remind.every("1h", count=3)                         # 1 h, 2 h, 3 h after the start
    remind.every("2d", at="09:00", until="14d")         # 09:00 every other calendar day, for two weeks
    remind.daily_at("17:30", tz="America/New_York")     # every day at 17:30 New York time, no end
    remind.weekdays_at("07:00", tz="Europe/Berlin")     # 07:00 Monday to Friday (skip defaults to sat, sun)
    escalate.to("slack-managers", mode="redeliver").after("1d", message="Still waiting")

Every mistake (a malformed duration or clock, an unknown time zone, a weekday token that is not one of
`mon`..`sun`, a skip list that skips every day, an empty channel, a bad mode, `count < 1`) raises
`ValidationError` from the builder, before any request is created (the reference only noticed at wait
time, after the request was delivered: REF §10.1 #6). `hitl_streams.schedule.expand_schedule` turns entries
into fire times; `entry.remind_body()` is the JSON body the client POSTs to `.../remind` when one fires.

JSON form (`encode_reminders` / `decode_reminders`, used by the server-side schedule): a list of at most
50 entries, each an object tagged on `"kind"`, camelCase keys, optional keys omitted when at their default::

    {"kind": "remind", "timing": TIMING, "message": "..."?}
    {"kind": "escalate", "timing": TIMING, "channel": "ops", "message": "..."?, "mode": "notify" | "redeliver"?}

    TIMING is one of
    {"kind": "delay", "after": D}
    {"kind": "at", "clock": "HH:MM", "dayOffset": 0?, "tz": "Area/City"?, "skip": ["sat", "sun"]?}
    {"kind": "every", "interval": D, "at": "HH:MM"?, "count": N?, "until": D?, "tz": "Area/City"?, "skip": [...]?}

D is a duration: a number of seconds (what `encode_reminders` writes) or a string such as `"30m"` (accepted
when decoding). `until` is measured from the start of the wait. Decoding rejects unknown keys, wrong types,
oversized strings and lists, and anything the builders would reject, with `ValidationError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Final, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec.structs import force_setattr

from .durations import Duration, parse_duration
from .errors import ValidationError

__all__ = [
    "DEFAULT_ESCALATE_MESSAGE",
    "DEFAULT_REMIND_MESSAGE",
    "MAX_ENTRIES",
    "WEEKDAYS",
    "At",
    "Delay",
    "EscalateBuilder",
    "EscalateEntry",
    "Every",
    "RemindBuilder",
    "RemindEntry",
    "ReminderEntry",
    "Timing",
    "decode_reminders",
    "encode_reminders",
    "escalate",
    "remind",
    "zone",
]

DEFAULT_REMIND_MESSAGE: Final = "Reminder: approval still pending"
DEFAULT_ESCALATE_MESSAGE: Final = "Escalation: approval still pending"
# Weekday tokens in `datetime.weekday()` order (Monday is 0).
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKEND: Final = ("sat", "sun")

MAX_ENTRIES: Final = 50
MAX_MESSAGE: Final = 10_000
MAX_CHANNEL: Final = 200
MAX_TZ: Final = 64
MAX_DAY_OFFSET: Final = 366
MAX_COUNT: Final = 1_000_000

_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")


# --- field validators (each returns the canonical value or raises) ---------------------------------------
def _clock(clock: object) -> str:
    """`"7:05"` -> `"07:05"`."""
    match = _CLOCK.fullmatch(clock) if isinstance(clock, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        shown = clock if isinstance(clock, str) and len(clock) <= 32 else repr(clock)[:32]
        raise ValidationError(f'Invalid clock time: "{shown}" (expected e.g. "07:00")')
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def zone(tz: str | None) -> ZoneInfo:
    """The `ZoneInfo` of an entry's tz; UTC when none is given.

    UTC, not the host's zone: a schedule must expand the same way on every machine and on every replay of a
    durable workflow (the reference read `TZ` and the host zone, REF §6.7 and §10.2 #13).
    """
    if tz is None:
        return _UTC
    if not isinstance(tz, str) or not tz or len(tz) > MAX_TZ:
        raise ValidationError(f'Unknown time zone: "{str(tz)[:MAX_TZ]}"')
    if tz in _NOT_PORTABLE or tz.startswith("right/"):
        # "localtime" is whatever the host is set to; "right/..." zones count leap seconds (clocks 27 s off).
        raise ValidationError(f'Time zone "{tz}" is not a portable IANA name (e.g. "Europe/Berlin")')
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(f'Unknown time zone: "{tz}"') from exc


_UTC: Final = ZoneInfo("UTC")
_NOT_PORTABLE: Final = frozenset({"localtime", "posixrules", "Factory"})


def _tz_key(tz: object) -> str | None:
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        if tz.key is None:
            raise ValidationError("A time zone must be named (ZoneInfo(key)), not loaded from a file")
        return tz.key
    if not isinstance(tz, str):
        raise ValidationError(f"tz must be a time zone name such as 'Europe/Berlin', not {type(tz).__name__}")
    zone(tz)
    return tz


def _skip(skip: object) -> tuple[str, ...]:
    """Canonical skip tuple: lower-case tokens, deduplicated, in weekday order; at least one day left over."""
    if isinstance(skip, str):
        skip = (skip,)
    if not isinstance(skip, Iterable):
        raise ValidationError("skip must be a list of weekday tokens (mon..sun)")
    days: set[int] = set()
    for token in skip:
        name = token.lower() if isinstance(token, str) else None
        if name not in WEEKDAYS:
            raise ValidationError(f'Invalid weekday: "{str(token)[:16]}" (expected one of {", ".join(WEEKDAYS)})')
        days.add(WEEKDAYS.index(name))
        if len(days) == 7:
            raise ValidationError("skip cannot skip every day of the week")
    return tuple(WEEKDAYS[d] for d in sorted(days))


def _seconds(value: object, what: str) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise ValidationError(f"{what} must be a number of seconds")
    return parse_duration(value, what=what)


def _message(message: object) -> None:
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
        raise ValidationError(f"message must be a string of at most {MAX_MESSAGE} characters")


def _channel(channel: object) -> str:
    if not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL:
        raise ValidationError(f"An escalation needs a channel (a non-empty string of at most {MAX_CHANNEL} characters)")
    return channel


def _mode(mode: object) -> Literal["notify", "redeliver"]:
    if mode == "notify":
        return "notify"
    if mode == "redeliver":
        return "redeliver"
    raise ValidationError('mode must be "notify" or "redeliver"')


# --- timings ---------------------------------------------------------------------------------------------
class Delay(msgspec.Struct, kw_only=True, frozen=True, tag="delay", tag_field="kind", rename="camel"):
    """Once, `after` seconds after the anchor (the start of the wait)."""

    after: float

    def __post_init__(self) -> None:
        force_setattr(self, "after", _seconds(self.after, "reminder delay"))


class At(msgspec.Struct, kw_only=True, frozen=True, tag="at", tag_field="kind", rename="camel", omit_defaults=True):
    """Once, at the wall-clock time `clock` in `tz`: on the anchor's local day if still ahead, else the next
    day (or `day_offset` days after the anchor's local day); skipped weekdays move it to the next allowed day."""

    clock: str
    day_offset: int = 0
    tz: str | None = None
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        force_setattr(self, "clock", _clock(self.clock))
        if not isinstance(self.day_offset, int) or isinstance(self.day_offset, bool):
            raise ValidationError("dayOffset must be an integer")
        if not 0 <= self.day_offset <= MAX_DAY_OFFSET:
            raise ValidationError(f"dayOffset must be between 0 and {MAX_DAY_OFFSET}")
        force_setattr(self, "tz", _tz_key(self.tz))
        force_setattr(self, "skip", _skip(self.skip))


class Every(
    msgspec.Struct, kw_only=True, frozen=True, tag="every", tag_field="kind", rename="camel", omit_defaults=True
):
    """Repeatedly. Without `at`: every `interval` seconds after the anchor, a fire that lands on a skipped
    weekday (in `tz`) being dropped. With `at`: at `clock` on every `interval // 1 day`-th local calendar day
    (the interval must then be whole days), skipped weekdays dropped. `count` counts fires that happen;
    `until` (seconds after the anchor, exclusive) ends the series; with neither, the series is unbounded
    (`expand_schedule` is lazy, and the wait's timeout clips it)."""

    interval: float
    at: str | None = None
    count: int | None = None
    until: float | None = None
    tz: str | None = None
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        force_setattr(self, "interval", _seconds(self.interval, "reminder interval"))
        if self.at is not None:
            force_setattr(self, "at", _clock(self.at))
            days = self.interval / 86_400
            if days != int(days):
                raise ValidationError(
                    "An interval with at= must be a whole number of days (e.g. '1d', '2d', '1w'), "
                    f"not {self.interval:g} seconds"
                )
        if self.count is not None and (
            not isinstance(self.count, int) or isinstance(self.count, bool) or not 1 <= self.count <= MAX_COUNT
        ):
            raise ValidationError(f"count must be an integer from 1 to {MAX_COUNT}")
        if self.until is not None:
            force_setattr(self, "until", _seconds(self.until, "until"))
        force_setattr(self, "tz", _tz_key(self.tz))
        force_setattr(self, "skip", _skip(self.skip))

    @property
    def step_days(self) -> int:
        """With `at`: calendar days between fires."""
        return int(self.interval // 86_400)


Timing = Delay | At | Every


# --- entries ---------------------------------------------------------------------------------------------
# Entries accept their fields positionally too (`RemindEntry(timing, message)`), as the client's signature does.
class RemindEntry(msgspec.Struct, frozen=True, tag="remind", tag_field="kind", rename="camel", omit_defaults=True):
    """A same-channel, threaded reminder."""

    timing: Timing
    message: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.timing, Delay | At | Every):
            raise ValidationError("timing must be a Delay, At or Every")
        _message(self.message)

    def remind_body(self) -> dict[str, Any]:
        """The body of `POST .../remind` when this entry fires."""
        return {"kind": "remind", "message": self.message or DEFAULT_REMIND_MESSAGE}


class EscalateEntry(msgspec.Struct, frozen=True, tag="escalate", tag_field="kind", rename="camel", omit_defaults=True):
    """An escalation to a fallback channel: `notify` posts there, `redeliver` delivers the request there again."""

    timing: Timing
    channel: str
    message: str | None = None
    mode: Literal["notify", "redeliver"] = "notify"

    def __post_init__(self) -> None:
        if not isinstance(self.timing, Delay | At | Every):
            raise ValidationError("timing must be a Delay, At or Every")
        _channel(self.channel)
        _message(self.message)
        _mode(self.mode)

    def remind_body(self) -> dict[str, Any]:
        """The body of `POST .../remind` when this entry fires."""
        return {
            "kind": "escalate",
            "channel": self.channel,
            "message": self.message or DEFAULT_ESCALATE_MESSAGE,
            "mode": self.mode,
        }


ReminderEntry = RemindEntry | EscalateEntry

# --- builders --------------------------------------------------------------------------------------------
E = TypeVar("E", RemindEntry, EscalateEntry)


def _until(until: Duration | None, for_: Duration | None) -> float | None:
    if until is not None and for_ is not None:
        raise ValidationError("Give until= or for_= (an alias), not both")
    bound = until if until is not None else for_
    return None if bound is None else parse_duration(bound, what="until")


class _Builder(Generic[E]):
    """The builder methods shared by `remind` and `escalate.to(...)`."""

    def _entry(self, timing: Timing, message: str | None) -> E:
        raise NotImplementedError

    def after(self, d: Duration, *, message: str | None = None) -> E:
        """Once, `d` after the wait starts."""
        return self._entry(Delay(after=parse_duration(d, what="reminder delay")), message)

    def at(
        self, clock: str, *, tz: str | ZoneInfo | None = None, skip: Iterable[str] = (), message: str | None = None
    ) -> E:
        """Once, at the next `clock` in `tz` (today if still ahead, else tomorrow), skipped weekdays moved on."""
        return self._entry(At(clock=clock, tz=_tz_key(tz), skip=_skip(skip)), message)

    def tomorrow_at(
        self, clock: str, *, tz: str | ZoneInfo | None = None, skip: Iterable[str] = (), message: str | None = None
    ) -> E:
        """Once, at `clock` on the next local day (the first allowed one if it is skipped)."""
        return self._entry(At(clock=clock, day_offset=1, tz=_tz_key(tz), skip=_skip(skip)), message)

    def every(
        self,
        interval: Duration,
        *,
        count: int | None = None,
        until: Duration | None = None,
        for_: Duration | None = None,
        at: str | None = None,
        tz: str | ZoneInfo | None = None,
        skip: Iterable[str] = (),
        message: str | None = None,
    ) -> E:
        """Every `interval` (at `at` on every n-th calendar day when `at` is given), at most `count` times,
        only before `until` (alias `for_`) after the wait starts."""
        timing = Every(
            interval=parse_duration(interval, what="reminder interval"),
            at=at,
            count=count,
            until=_until(until, for_),
            tz=_tz_key(tz),
            skip=_skip(skip),
        )
        return self._entry(timing, message)

    def daily_at(
        self,
        clock: str,
        *,
        count: int | None = None,
        until: Duration | None = None,
        for_: Duration | None = None,
        tz: str | ZoneInfo | None = None,
        skip: Iterable[str] = (),
        message: str | None = None,
    ) -> E:
        """At `clock` every day (in `tz`)."""
        return self.every("1d", at=clock, count=count, until=until, for_=for_, tz=tz, skip=skip, message=message)

    def weekdays_at(
        self,
        clock: str,
        *,
        count: int | None = None,
        until: Duration | None = None,
        for_: Duration | None = None,
        tz: str | ZoneInfo | None = None,
        skip: Iterable[str] = WEEKEND,
        message: str | None = None,
    ) -> E:
        """At `clock` every day but the `skip` days (Saturday and Sunday unless told otherwise)."""
        return self.every("1d", at=clock, count=count, until=until, for_=for_, tz=tz, skip=skip, message=message)


class RemindBuilder(_Builder[RemindEntry]):
    """`remind.*`: reminders in the request's own channel and thread."""

    def _entry(self, timing: Timing, message: str | None) -> RemindEntry:
        return RemindEntry(timing, message)


class EscalateBuilder(_Builder[EscalateEntry]):
    """`escalate.to(channel, mode=...).*`: the same timings, sent to a fallback channel."""

    def __init__(self, channel: str, mode: Literal["notify", "redeliver"] = "notify") -> None:
        self.channel = _channel(channel)
        self.mode = _mode(mode)

    def _entry(self, timing: Timing, message: str | None) -> EscalateEntry:
        return EscalateEntry(timing, self.channel, message, self.mode)


class _Escalate:
    def to(self, channel: str, mode: Literal["notify", "redeliver"] = "notify") -> EscalateBuilder:
        """Escalations to `channel`; `mode="redeliver"` delivers the request itself there again."""
        return EscalateBuilder(channel, mode)


remind: Final = RemindBuilder()
escalate: Final = _Escalate()


# --- JSON form -------------------------------------------------------------------------------------------
def encode_reminders(entries: Sequence[ReminderEntry]) -> list[dict[str, Any]]:
    """The JSON form (see the module docstring) of `entries`."""
    for entry in entries:
        if not isinstance(entry, RemindEntry | EscalateEntry):
            raise ValidationError("reminders must be built with remind.* or escalate.to(...).*")
    # Through JSON bytes, so the result holds only JSON types (lists, not the structs' tuples).
    encoded: list[dict[str, Any]] = msgspec.json.decode(msgspec.json.encode(list(entries)))
    return encoded


_Str16 = Annotated[str, msgspec.Meta(max_length=16)]
_WireDuration = Annotated[str, msgspec.Meta(max_length=32)] | float
_WireTz = Annotated[str, msgspec.Meta(max_length=MAX_TZ)] | None
_WireSkip = Annotated[list[_Str16], msgspec.Meta(max_length=7)]
_WireMessage = Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE)] | None


class _WireDelay(
    msgspec.Struct, frozen=True, tag="delay", tag_field="kind", rename="camel", forbid_unknown_fields=True
):
    after: _WireDuration


class _WireAt(msgspec.Struct, frozen=True, tag="at", tag_field="kind", rename="camel", forbid_unknown_fields=True):
    clock: _Str16
    day_offset: int = 0
    tz: _WireTz = None
    skip: _WireSkip = []


class _WireEvery(
    msgspec.Struct, frozen=True, tag="every", tag_field="kind", rename="camel", forbid_unknown_fields=True
):
    interval: _WireDuration
    at: _Str16 | None = None
    count: int | None = None
    until: _WireDuration | None = None
    tz: _WireTz = None
    skip: _WireSkip = []


_WireTiming = _WireDelay | _WireAt | _WireEvery


class _WireRemind(msgspec.Struct, frozen=True, tag="remind", tag_field="kind", forbid_unknown_fields=True):
    timing: _WireTiming
    message: _WireMessage = None


class _WireEscalate(msgspec.Struct, frozen=True, tag="escalate", tag_field="kind", forbid_unknown_fields=True):
    timing: _WireTiming
    channel: Annotated[str, msgspec.Meta(max_length=MAX_CHANNEL)]
    message: _WireMessage = None
    mode: Literal["notify", "redeliver"] = "notify"


_WireList = Annotated[list[_WireRemind | _WireEscalate], msgspec.Meta(max_length=MAX_ENTRIES)]


def _timing(wire: _WireTiming) -> Timing:
    if isinstance(wire, _WireDelay):
        return Delay(after=parse_duration(wire.after, what="after"))
    if isinstance(wire, _WireAt):
        return At(clock=wire.clock, day_offset=wire.day_offset, tz=wire.tz, skip=tuple(wire.skip))
    return Every(
        interval=parse_duration(wire.interval, what="interval"),
        at=wire.at,
        count=wire.count,
        until=None if wire.until is None else parse_duration(wire.until, what="until"),
        tz=wire.tz,
        skip=tuple(wire.skip),
    )


def decode_reminders(obj: object) -> list[ReminderEntry]:
    """Entries from their JSON form (a parsed JSON list); `ValidationError` for anything malformed or oversized."""
    try:
        wire = msgspec.convert(obj, _WireList, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"Invalid reminders: {exc}") from None
    entries: list[ReminderEntry] = []
    for index, item in enumerate(wire):
        try:
            timing = _timing(item.timing)
            if isinstance(item, _WireRemind):
                entries.append(RemindEntry(timing, item.message))
            else:
                entries.append(EscalateEntry(timing, _channel(item.channel), item.message, item.mode))
        except ValidationError as exc:
            raise ValidationError(f"Invalid reminders: entry {index}: {exc}") from None
    return entries
