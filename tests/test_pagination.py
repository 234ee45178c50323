"""Inbox paging rules: limit clamp, cursor format, strict-after comparison, page building (REF §2.3)."""

from __future__ import annotations

import base64

import pytest

from hitl_streams import Action, HumanRequestRecord, ValidationError
from hitl_streams.pagination import (
    DEFAULT_INBOX_LIMIT,
    MAX_INBOX_LIMIT,
    build_page,
    clamp_limit,
    decode_cursor,
    encode_cursor,
    is_after_cursor,
)

AT = "2026-11-25T17:03:04.512Z"


def test_constants() -> None:
    assert (DEFAULT_INBOX_LIMIT, MAX_INBOX_LIMIT) == (50, 10_000)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, 50),
        (0, 50),
        (-1, 50),
        (-10_000, 50),
        (0.5, 50),
        (float("nan"), 50),
        (float("inf"), 50),
        (float("-inf"), 50),
        (1, 1),
        (1.9, 1),
        (2.5, 2),
        (49, 49),
        (51, 51),
        (9_999, 9_999),
        (10_000, 10_000),
        (10_001, 10_000),
        (10**12, 10_000),
        (1e300, 10_000),
    ],
)
def test_clamp_limit(limit: float | None, expected: int) -> None:
    assert clamp_limit(limit) == expected


def test_clamp_limit_treats_booleans_as_absent() -> None:
    assert clamp_limit(True) == 50


def test_cursor_is_base64url_without_padding_of_created_at_and_id() -> None:
    cursor = encode_cursor(AT, "a1")
    assert cursor == base64.urlsafe_b64encode(f"{AT}|a1".encode()).decode().rstrip("=")
    assert cursor == "MjAyNi0xMS0yNVQxNzowMzowNC41MTJafGEx"
    assert "=" not in cursor


def test_cursor_uses_the_url_safe_alphabet() -> None:
    # "?>?" encodes to "Pz4_" (standard base64 would give "Pz4/").
    cursor = encode_cursor(AT, "?>?" * 5)
    assert "_" in cursor or "-" in cursor
    assert "/" not in cursor
    assert "+" not in cursor
    assert decode_cursor(cursor) == (AT, "?>?" * 5)


@pytest.mark.parametrize("record_id", ["a1", "", "with|pipe", "ünïcode/💡", "x" * 300])
def test_cursor_round_trips_and_splits_at_the_first_pipe(record_id: str) -> None:
    assert decode_cursor(encode_cursor(AT, record_id)) == (AT, record_id)


def test_decode_accepts_padding_and_does_not_validate_the_id() -> None:
    padded = base64.urlsafe_b64encode(f"{AT}|x".encode()).decode()
    assert padded.endswith("=")
    assert decode_cursor(padded) == (AT, "x")
    assert decode_cursor(encode_cursor(AT, "")) == (AT, "")
    # A position before every record is still a position (JavaScript accepts year 0000).
    assert decode_cursor(encode_cursor("0000-01-01T00:00:00.000Z", "")) == ("0000-01-01T00:00:00.000Z", "")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "YWJj",  # "abc": no "|"
        "!!!",
        "a",  # impossible base64 length
        "/w",  # decodes to 0xff, not UTF-8
        "x" * 5000,
    ],
)
def test_invalid_cursors_raise_validation_error_with_the_typescript_message(cursor: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_cursor(cursor)
    assert str(caught.value) == f'Invalid inbox cursor "{cursor}"'
    assert isinstance(caught.value, ValueError)


def test_is_after_cursor_is_strict_in_created_at_desc_then_id_desc_order() -> None:
    cursor = (AT, "m")
    assert is_after_cursor("2026-11-25T17:03:04.511Z", "z", cursor)
    assert is_after_cursor(AT, "l", cursor)
    assert not is_after_cursor(AT, "m", cursor)
    assert not is_after_cursor(AT, "n", cursor)
    assert not is_after_cursor("2026-11-25T17:03:04.513Z", "a", cursor)


def _record(record_id: str, created_at: str = AT) -> HumanRequestRecord:
    return HumanRequestRecord(
        id=record_id,
        token=f"tok_{record_id}",
        channel="c",
        namespace="global",
        message="m",
        actions=[Action(id="approve")],
        status="pending",
        created_at=created_at,
    )


def test_build_page_cuts_to_limit_and_points_the_cursor_at_the_last_item() -> None:
    rows = [_record("c"), _record("b"), _record("a")]
    page = build_page(rows, 2)
    assert [r.id for r in page.items] == ["c", "b"]
    assert page.next_cursor == encode_cursor(AT, "b")
    assert decode_cursor(page.next_cursor) == (AT, "b")


def test_build_page_without_more_rows_has_no_cursor() -> None:
    rows = [_record("b"), _record("a")]
    page = build_page(rows, 2)
    assert [r.id for r in page.items] == ["b", "a"]
    assert page.next_cursor is None
    assert build_page([], 5).items == []


@pytest.mark.parametrize("created_at", ["yesterday", "2026-11-25", "", "17:03:04"])
def test_a_cursor_whose_created_at_is_not_a_timestamp_is_invalid(created_at: str) -> None:
    forged = base64.urlsafe_b64encode(f"{created_at}|p3".encode()).rstrip(b"=").decode()
    with pytest.raises(ValidationError, match="Invalid inbox cursor"):
        decode_cursor(forged)
