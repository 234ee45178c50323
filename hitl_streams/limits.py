"""What one HTTP request may make the server parse and store: every bound in one place.

The HTTP layer (`server/wire.py`, `server/asgi.py`) enforces these before anything is written, with a
400 for a malformed or out-of-bounds field and a 413 for a body or batch too large to store. The
README's limits table lists the same numbers. The programmatic API (`hitl.inbox`, a `State`) is trusted
code and is not bound by them, except where a `State` bounds key fragments itself.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ACTION_ID_PATTERN",
    "BODY_READ_TIMEOUT_SECONDS",
    "MAX_ACTIONS",
    "MAX_ACTION_ID",
    "MAX_BATCH_ITEMS",
    "MAX_BATCH_STORED_BYTES",
    "MAX_BODY_BYTES",
    "MAX_CHANNEL",
    "MAX_FIELDS_PER_ACTION",
    "MAX_FIELD_KEY",
    "MAX_JSON_DEPTH",
    "MAX_LABEL",
    "MAX_OPTIONS",
    "MAX_TOKEN",
    "json_too_deep",
]

MAX_BODY_BYTES: Final = 1 << 20
"""A request body (1 MiB); larger ones get 413 (`Hitl(max_body_bytes=...)` changes it)."""
BODY_READ_TIMEOUT_SECONDS: Final = 30.0
"""A body not fully received this long after the request started gets 408 (`Hitl(body_timeout=...)`)."""
MAX_JSON_DEPTH: Final = 64
"""Nesting of arrays and objects in a JSON body; deeper bodies get 400 before they are decoded."""
MAX_BATCH_ITEMS: Final = 1000
"""Items in one batch."""
MAX_BATCH_STORED_BYTES: Final = 16 << 20
"""What a batch's item records would take once stored (each carries the batch's context and actions):
over 16 MiB is a 413. It bounds the amplification of one 1 MiB body copied into many records."""
MAX_ACTIONS: Final = 32
"""Actions of one request or batch."""
MAX_ACTION_ID: Final = 128
"""Characters of an action id, which must match `ACTION_ID_PATTERN`."""
ACTION_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:\-]+")
"""Letters, digits, `_`, `.`, `:` and `-`."""
MAX_FIELDS_PER_ACTION: Final = 32
"""Form fields of one action."""
MAX_FIELD_KEY: Final = 128
"""Characters of a field's key."""
MAX_LABEL: Final = 256
"""Characters of a label (action label, submit/close label, field label, select option)."""
MAX_OPTIONS: Final = 100
"""Options of one select field."""
MAX_CHANNEL: Final = 256
"""Characters of a channel (`adapter` or `adapter:destination`); no control characters."""
MAX_TOKEN: Final = 256
"""Characters of a resume token (request and batch items)."""

_OPEN: Final = frozenset(b"[{")
_CLOSE: Final = frozenset(b"]}")
_QUOTE: Final = 0x22
_BACKSLASH: Final = 0x5C
_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `body` nests arrays/objects deeper than `limit`, brackets inside strings not counted.

    A byte scan, before any decoding: a decoder recursing 10,000 levels deep would exhaust the stack.
    Only the structural bytes are visited (a regular expression finds them), so it costs little more
    than one pass of `re` over the body."""
    depth = 0
    in_string = False
    escaped = False
    escape_at = -2
    for match in _STRUCTURAL.finditer(body):
        byte = body[match.start()]
        if in_string:
            if escaped:
                # The byte right after a backslash is escaped only if it is adjacent to it.
                escaped = False
                if match.start() == escape_at + 1:
                    continue
            if byte == _BACKSLASH:
                escaped, escape_at = True, match.start()
            elif byte == _QUOTE:
                in_string = False
            continue
        if byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
    return False
