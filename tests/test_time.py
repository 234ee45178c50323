"""Timestamps: JavaScript `toISOString()` format, in both directions (hitl_streams._time)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_streams import _time
from hitl_streams._time import iso_to_ms, ms_to_iso, now_iso, now_ms

JS_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.mark.parametrize(
    ("ms", "iso"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_795_626_184_512, "2026-11-25T17:03:04.512Z"),
        (1_795_626_184_000, "2026-11-25T17:03:04.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
        (-30_610_310_400_000, "0999-12-31T00:00:00.000Z"),
        (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
    ],
)
def test_ms_to_iso_matches_javascript_to_iso_string(ms: int, iso: str) -> None:
    assert ms_to_iso(ms) == iso
    assert iso_to_ms(iso) == ms


def test_ms_to_iso_agrees_with_datetime_across_the_calendar() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    step = 7_919_000_003  # odd stride: hits every month, leap days, and varied times of day
    for ms in range(-62_135_596_800_000, 253_402_300_799_999, step * 1000):
        moment = epoch + timedelta(milliseconds=ms)
        expected = (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
        )
        assert ms_to_iso(ms) == expected
        assert iso_to_ms(expected) == ms


def test_now_iso_is_javascript_format_and_close_to_now_ms() -> None:
    before = now_ms()
    text = now_iso()
    after = now_ms()
    assert JS_ISO.fullmatch(text), text
    assert before <= iso_to_ms(text) <= after


@pytest.mark.parametrize("start", [1_795_626_184_998, 1_795_651_199_998, 946_684_799_999, 253_402_300_799_998])
def test_now_iso_formats_every_millisecond_as_ms_to_iso_across_seconds_and_days(
    monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    """now_iso reuses the text of the second it is in: across second, day and year boundaries too."""
    for ms in [start, start, start + 1, start + 2, start + 3, start + 1000, start - 5]:
        monkeypatch.setattr(_time, "now_ms", lambda ms=ms: ms)
        assert now_iso() == ms_to_iso(ms)


def test_iso_to_ms_accepts_other_iso_forms_like_date_parse() -> None:
    assert iso_to_ms("2026-11-25T17:03:04.512+01:00") == 1_795_626_184_512 - 3_600_000
    assert iso_to_ms("2026-11-25") == 1_795_564_800_000
    assert iso_to_ms("2026-11-25T17:03:04.5129Z") == 1_795_626_184_512


@pytest.mark.parametrize("junk", ["", "yesterday", "2026-13-01T00:00:00.000Z", "2026-11-25T17:61:00.000Z"])
def test_iso_to_ms_gives_zero_for_unparseable_input(junk: str) -> None:
    assert iso_to_ms(junk) == 0


@settings(max_examples=2000, deadline=None)
@given(
    st.from_regex(r"[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", fullmatch=True)
    | st.builds(
        lambda ms, swap: swap(ms_to_iso(ms)),
        st.integers(-62_167_219_200_000, 253_402_300_799_999),
        st.sampled_from([lambda t: t, lambda t: t[:20] + "٣" + t[21:], lambda t: t[:19] + "," + t[20:], str.lower]),
    )
)
def test_iso_to_ms_reads_the_javascript_form_by_its_second_as_the_full_parser_does(value: str) -> None:
    """The fast path (the second cached, the milliseconds added) gives what the full parser gives, for valid
    and invalid fields, non-ASCII digits and near-misses of the form alike."""
    assert iso_to_ms(value) == _time._parsed_ms(value)
