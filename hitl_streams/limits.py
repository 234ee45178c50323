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

_OTHER_BYTES: Final = bytes(range(256)).translate(None, b"[]{}")
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")
_RUNS: Final = re.compile(rb"\[+|\]+")
_PEAKS_IN_PYTHON: Final = 100_000


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `body` nests arrays/objects deeper than `limit`, brackets inside strings not counted.

    A scan of the bytes before any decoding (a decoder recursing 100,000 levels deep exhausts the stack).
    Bytes operations do the bulk at C speed: drop escaped backslashes and quotes, keep what lies outside
    strings (every other piece between quotes), keep only the brackets, as one kind. Then, while there
    are many innermost pairs (`[]`), remove them (one level each time); once there are few, walk the runs
    of openers and closers. Tens of milliseconds for the worst 1 MiB body, against hundreds for a loop
    over every byte."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # fewer openers than the limit, strings included: no nesting can be deeper (most bodies)
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    nesting = outside.translate(_ONE_KIND, _OTHER_BYTES)
    if b"[" * (limit + 1) in nesting:
        return True  # a run of openers that long is that deep
    removed = 0  # levels of innermost pairs removed so far
    while nesting:
        peaks = nesting.count(b"[]")
        if peaks == 0:  # unbalanced (not JSON): what is left opens this many more levels at most
            return removed + nesting.count(b"[") > limit
        if peaks <= _PEAKS_IN_PYTHON:
            depth = removed
            for run in _RUNS.findall(nesting):
                if run[0] == 0x5B:  # "["
                    depth += len(run)
                    if depth > limit:
                        return True
                else:
                    depth -= len(run)
            return False
        nesting = nesting.replace(b"[]", b"")
        removed += 1
        if removed > limit:
            return True
    return False
