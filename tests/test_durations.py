"""`parse_duration`: the reference's units plus `ms`, and none of its silent acceptance of bad values (REF §10.1 #5)."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hitl_streams
from hitl_streams.durations import MAX_DURATION_SECONDS, parse_duration
from hitl_streams.errors import ValidationError

EXPECTED = '(expected e.g. "2w", "7d", "72h", "30m", "10s")'


# --- a port of the reference's duration.ts and of its client's timeout rule (REF §6.3, §6.5) -----------------
def _reference_parse_duration_ms(d: object) -> float:
    if isinstance(d, int | float):
        return float(d)  # numbers pass through as ms, unvalidated
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(w|d|h|m|s)", str(d))
    if match is None:
        raise ValueError(f'Invalid duration: "{d}" {EXPECTED}')
    unit = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}[match.group(2)]
    return float(match.group(1)) * unit


def _reference_timeout_ms(timeout: object) -> float | None:
    """The wait loop's timeout: a wake is scheduled only while `timeoutMs > elapsed` (0 at the start)."""
    timeout_ms = _reference_parse_duration_ms(timeout)
    return timeout_ms if timeout_ms > 0 else None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2w", 1_209_600.0),
        ("7d", 604_800.0),
        ("72h", 259_200.0),
        ("30m", 1_800.0),
        ("10s", 10.0),
        ("1.5h", 5_400.0),
        ("500ms", 0.5),
        ("20ms", 0.02),
        ("0.5s", 0.5),
    ],
)
def test_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_numbers_are_seconds_and_timedeltas_convert() -> None:
    assert parse_duration(90) == 90.0
    assert parse_duration(0.25) == 0.25
    assert parse_duration(timedelta(minutes=2, milliseconds=5)) == pytest.approx(120.005)
    assert isinstance(parse_duration(3), float)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "10",
        "h",
        "1.h",
        ".5h",
        "-5s",
        "5 s",
        " 5s",
        "5S",
        "5sec",
        "1e3s",
        "5y",
        "10us",
        "NaNs",
        "∞s",
        "\u0665s",
        "5s\n",
    ],
)
def test_malformed_strings_are_rejected_with_the_reference_message(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(bad)
    assert str(info.value) == f'Invalid duration: "{bad}" {EXPECTED}'


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, "0s", "0ms", "0.0h", timedelta(0)])
def test_zero_negative_and_non_finite_are_errors(bad: object) -> None:
    with pytest.raises(ValidationError, match="must be a positive, finite duration"):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, False, None, [1], {"s": 1}, b"10s", object()])
def test_other_types_are_errors(bad: object) -> None:
    with pytest.raises(ValidationError, match=re.escape(EXPECTED)):
        parse_duration(bad)  # type: ignore[arg-type]


def test_absurdly_long_durations_are_errors_not_overflows() -> None:
    for bad in (10**400, 1e300, "99999999999w", timedelta(days=999_999_999)):
        with pytest.raises(ValidationError, match="at most 100 years"):
            parse_duration(bad)
    assert parse_duration(MAX_DURATION_SECONDS) == MAX_DURATION_SECONDS


def test_what_names_the_argument_and_long_input_is_shortened() -> None:
    with pytest.raises(ValidationError, match=r'^Invalid timeout: "soon"'):
        parse_duration("soon", what="timeout")
    with pytest.raises(ValidationError) as info:
        parse_duration("x" * 10_000)
    assert len(str(info.value)) < 200


def test_reexported_from_the_package() -> None:
    assert hitl_streams.parse_duration is parse_duration
    assert "parse_duration" in hitl_streams.__all__


def test_ref_10_1_5_zero_negative_nan_timeouts_are_errors_not_no_timeout() -> None:
    # The reference: numbers pass unvalidated, and a timeout of 0 or less silently means "wait forever".
    assert _reference_timeout_ms(0) is None
    assert _reference_timeout_ms(-5_000) is None
    assert math.isnan(_reference_parse_duration_ms(math.nan))
    with pytest.raises(ValueError):
        _reference_parse_duration_ms("500ms")  # and it has no ms unit
    # Ours: each is an error (or, for "500ms", half a second).
    for bad in (0, -5, math.nan):
        with pytest.raises(ValidationError):
            parse_duration(bad, what="timeout")
    assert parse_duration("500ms") == 0.5


@given(st.floats(min_value=1e-6, max_value=MAX_DURATION_SECONDS))
def test_positive_floats_pass_through(seconds: float) -> None:
    assert parse_duration(seconds) == seconds


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["w", "d", "h", "m", "s", "ms"]))
def test_string_units_agree_with_timedelta(amount: int, unit: str) -> None:
    expected = {
        "w": timedelta(weeks=amount),
        "d": timedelta(days=amount),
        "h": timedelta(hours=amount),
        "m": timedelta(minutes=amount),
        "s": timedelta(seconds=amount),
        "ms": timedelta(milliseconds=amount),
    }[unit]
    if expected.total_seconds() > MAX_DURATION_SECONDS:
        with pytest.raises(ValidationError):
            parse_duration(f"{amount}{unit}")
    else:
        assert parse_duration(f"{amount}{unit}") == pytest.approx(expected.total_seconds())
