"""`json_too_deep`: the byte scan agrees with the nesting depth of the decoded value, strings included."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_streams.limits import MAX_JSON_DEPTH, json_too_deep

# Strings full of what could fool a scan: brackets, quotes, backslashes, escapes.
tricky_text = st.text(alphabet='[]{}"\\/abc\n\u00e9', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(value=values, limit=st.integers(min_value=0, max_value=6), ascii_only=st.booleans())
def test_the_scan_agrees_with_the_decoded_depth(value: Any, limit: int, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_too_deep(body, limit) == (depth(value) > limit), body


def test_the_documented_limit_and_hostile_shapes() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not json_too_deep(at_limit)
    assert json_too_deep(b"[" + at_limit + b"]")
    assert json_too_deep(b'{"a":' * 100_000)  # never closed: deep all the same
    assert not json_too_deep(b"[[[")  # not JSON, but not deep: the decoder says what is wrong
    assert not json_too_deep(b'["' + b"[" * 10_000 + b'"]')  # inside a string
    assert not json_too_deep(b'["\\\\", "\\"[[[[", ' + b"[" * 3 + b"]" * 3 + b"]", 4)
    assert json_too_deep(b'["\\\\", "\\"[[[[", ' + b"[" * 4 + b"]" * 4 + b"]", 4)
