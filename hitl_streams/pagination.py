"""Paging rules shared by every State: the inbox's limit clamp, cursor format and newest-first order
(REF §2.3), and the oldest-first pages of a thread's timeline and a subject's audit trail."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import ValidationError
from .records import HumanRequestRecord, InboxPage

__all__ = [
    "DEFAULT_INBOX_LIMIT",
    "MAX_INBOX_LIMIT",
    "Cursor",
    "build_page",
    "clamp_limit",
    "decode_cursor",
    "encode_cursor",
    "is_after_cursor",
    "page_after",
    "position_cursor",
    "position_order",
]

_T = TypeVar("_T")

DEFAULT_INBOX_LIMIT = 50
MAX_INBOX_LIMIT = 10_000

Cursor = tuple[str, str]
"""A decoded cursor: `(created_at, id)` of the last item of the previous page."""


def clamp_limit(limit: float | None) -> int:
    """50 when absent, not finite or below 1; else `min(floor(limit), 10000)`."""
    if limit is None or isinstance(limit, bool) or not math.isfinite(limit) or limit < 1:
        return DEFAULT_INBOX_LIMIT
    return min(math.floor(limit), MAX_INBOX_LIMIT)


def encode_cursor(created_at: str, record_id: str) -> str:
    """base64url without padding of `"{created_at}|{id}"`."""
    raw = f"{created_at}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Cursor:
    """Inverse of `encode_cursor`; a `ValidationError` for anything that is not one."""
    invalid = ValidationError(f'Invalid inbox cursor "{cursor}"')
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4096:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    created_at, sep, record_id = text.partition("|")
    if not sep or not _is_timestamp(created_at):
        # Every cursor we hand out starts with a createdAt; anything else would page from nowhere.
        raise invalid
    return created_at, record_id


_TIMESTAMP = re.compile(r"([+-]\d{6}|\d{4})-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})")


def _is_timestamp(value: str) -> bool:
    """An ISO 8601 date-time with a zone, as JavaScript writes them (years outside 0-9999 as +/-YYYYYY)."""
    return _TIMESTAMP.fullmatch(value) is not None


def is_after_cursor(created_at: str, record_id: str, cursor: Cursor) -> bool:
    """True iff a row sorts strictly after the cursor in (created_at desc, id desc) order."""
    return created_at < cursor[0] or (created_at == cursor[0] and record_id < cursor[1])


def build_page(rows: Sequence[HumanRequestRecord], limit: int) -> InboxPage:
    """Rows already in order, `limit + 1` of them at most: cut to `limit` and set the next cursor."""
    if len(rows) > limit:
        items = list(rows[:limit])
        last = items[-1]
        return InboxPage(items=items, next_cursor=encode_cursor(last.created_at, last.id))
    return InboxPage(items=list(rows))


# --- timelines and audit trails: oldest first; the cursor is the last item of the previous page -------------
def page_after(
    items: Sequence[_T], key: Callable[[_T], str], *, limit: float | None, cursor: str | None, what: str
) -> list[_T]:
    """The items after the one whose `key` is `cursor` (all of them without a cursor), at most `limit`
    (clamped like the inbox's) when one is given. An unknown cursor is a `ValidationError`."""
    start = 0
    if cursor is not None:
        for index, item in enumerate(items):
            if key(item) == cursor:
                start = index + 1
                break
        else:
            raise ValidationError(f'Invalid {what} cursor "{cursor}"')
    stop = None if limit is None else start + clamp_limit(limit)
    return list(items[start:stop])


_POSITION = re.compile(r"\d{1,20}-\d{1,20}")


def position_cursor(cursor: str) -> tuple[int, int]:
    """An audit cursor (the stream position of the last record of a page) as a sortable pair."""
    if not isinstance(cursor, str) or _POSITION.fullmatch(cursor) is None:
        raise ValidationError(f'Invalid audit cursor "{cursor}"')
    return position_order(cursor)


def position_order(position: str) -> tuple[int, int]:
    """A stream position (`ms-seq`) as a pair that sorts like the stream."""
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)
