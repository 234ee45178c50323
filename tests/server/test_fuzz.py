"""Property test: arbitrary JSON bodies, bytes and paths at every route never give a 500 or a traceback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_streams.server import Hitl
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

# Values that are sometimes right, so that bodies get past the first checks and reach deeper ones.
candidates: dict[str, st.SearchStrategy[Any]] = {
    "token": st.sampled_from(["t1", "t2", ""]) | json_values,
    "message": st.sampled_from(["m", ""]) | json_values,
    "actions": st.sampled_from([APPROVE_DENY, [{"id": "approve"}], [{"id": "a"}, {"id": "a"}], []]) | json_values,
    "context": st.sampled_from([{"k": 1}, None]) | json_values,
    "channel": st.sampled_from(["inbox", "chat", "chat:dest", "fax", "", "inbox:x"]) | json_values,
    "namespace": st.sampled_from(["global", "ops", "bad ns", ""]) | json_values,
    "after": st.sampled_from([{"id": "x"}, {"id": ""}, {}]) | json_values,
    "on": st.sampled_from(["x", ""]) | json_values,
    "detail": st.sampled_from([{"a": 1}]) | json_values,
    "items": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "token": st.text(max_size=5) | json_values,
                "message": st.text(max_size=5) | json_values,
                "defaults": st.sampled_from([{"subject": "x"}, {"subject": 5}, {"reason": None}]) | json_values,
            },
        ),
        max_size=3,
    )
    | json_values,
    "defaultsActionId": st.sampled_from(["approve", "deny", "zzz"]) | json_values,
    "kind": st.sampled_from(["remind", "escalate", "other"]) | json_values,
    "mode": st.sampled_from(["notify", "redeliver", "loud"]) | json_values,
}
bodies = st.fixed_dictionaries({}, optional=candidates) | json_values
raw_bodies = st.binary(max_size=64) | st.sampled_from([b"", b"{", b"[1e400]", b'{"a":' * 50])

ROUTES = [
    "requests",
    "batches",
    "notifications",
    "requests/{id}/timeout",
    "requests/{id}/remind",
    "batches/{batch}/timeout",
    "batches/{batch}/remind",
    "channels/chat/x",
    "channels/none",
    "healthz",
]
# Printable characters an HTTP client can put in a path (it percent-encodes the ones that need it).
segments = st.text(
    alphabet=st.characters(min_codepoint=0x21, blacklist_categories=["Cs", "Cc"], blacklist_characters="/?#"),
    max_size=12,
)


async def exercise(method: str, path: str, body: bytes) -> list[httpx.Response]:
    chat = RecordingAdapter("chat", channel_key="chat")
    hitl = Hitl(adapters=[chat], secret="fuzz")
    transport = httpx.ASGITransport(app=hitl.asgi)
    headers = {"authorization": "Bearer fuzz"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client:
        created = await client.post(f"{API}/requests", json={"token": "seed", "message": "m", "actions": APPROVE_DENY})
        batch = await client.post(
            f"{API}/batches", json={"items": [{"token": "b0", "message": "x"}], "actions": APPROVE_DENY}
        )
        path = path.replace("{id}", created.json()["id"]).replace("{batch}", batch.json()["batchId"])
        first = await client.request(method, f"{API}/{path}", content=body)
        second = await client.request(method, f"{API}/{path}", content=body)  # retries too
        return [first, second]


def check(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code < 500, (response.status_code, response.text)
        assert b"Traceback" not in response.content
        payload = response.json()
        assert isinstance(payload, dict)
        if response.status_code >= 400:
            assert list(payload) == ["error"] and isinstance(payload["error"], str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    route=st.sampled_from(ROUTES),
    body=bodies,
)
def test_json_bodies_never_crash_a_route(method: str, route: str, body: Any) -> None:
    check(asyncio.run(exercise(method, route, json.dumps(body).encode())))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=raw_bodies)
def test_raw_bytes_never_crash_a_route(route: str, body: bytes) -> None:
    check(asyncio.run(exercise("POST", route, body)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["POST", "GET", "DELETE"]),
    parts=st.lists(segments | st.sampled_from(["requests", "batches", "timeout", "remind", "channels"]), max_size=5),
    body=bodies,
)
def test_arbitrary_paths_never_crash(method: str, parts: list[str], body: Any) -> None:
    check(asyncio.run(exercise(method, "/".join(parts), json.dumps(body).encode())))


# --- hostile bodies (issue #12): broken UTF-8, deep nesting, fields far beyond their bounds -----------------
def _with_bytes(body: Any, at: int, junk: bytes) -> bytes:
    """`body` as JSON with `junk` (invalid UTF-8) spliced in at a position inside it."""
    raw = json.dumps(body).encode()
    cut = at % (len(raw) + 1)
    return raw[:cut] + junk + raw[cut:]


def _nested(depth: int, opener: bytes, closer: bytes, closed: bool) -> bytes:
    return opener * depth + (b"1" + closer * depth if closed else b"")


invalid_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"])
huge = st.sampled_from(["x" * 100_000, "inbox:" + "y" * 10_000, "a\u0000b", "chat:\r\n"])
hostile_fields = st.fixed_dictionaries(
    {},
    optional={
        "token": huge,
        "message": st.just("m"),
        "actions": st.sampled_from(
            [
                [{"id": "x" * 100_000}],
                [{"id": f"a{i}"} for i in range(5_000)],
                [{"id": "a", "fields": {f"f{i}": {"kind": "text", "label": "L"} for i in range(500)}}],
                APPROVE_DENY,
            ]
        ),
        "channel": huge,
        "items": st.sampled_from(
            [[{"token": f"t{i}", "message": "m"} for i in range(1_500)], [{"token": "x" * 10_000, "message": "m"}]]
        ),
        "kind": st.just("escalate"),
        "mode": st.just("redeliver"),
    },
)
hostile_bodies = st.one_of(
    st.builds(_with_bytes, bodies | hostile_fields, st.integers(min_value=0), invalid_utf8),
    st.builds(
        _nested,
        st.integers(min_value=60, max_value=120_000),
        st.sampled_from([b"[", b'{"a":', b'[{"b":']),
        st.sampled_from([b"]", b"}", b"}]"]),
        st.booleans(),
    ),
    hostile_fields.map(lambda body: json.dumps(body).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(route=st.sampled_from(ROUTES), body=hostile_bodies)
def test_hostile_bodies_never_crash_a_route(route: str, body: bytes) -> None:
    check(asyncio.run(exercise("POST", route, body)))
