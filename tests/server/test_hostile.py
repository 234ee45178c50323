"""Hostile input at the HTTP API: each case answers a clear 4xx, never a 500 (issue #12, items 4 and 5).

Invalid UTF-8, JSON nested deeper than `MAX_JSON_DEPTH` (refused before decoding), fields beyond the
documented bounds of `hitl_streams.limits`, batches too large to store (413), and a client that
declares a body it never sends (408 from a real uvicorn server, over a raw socket).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hitl_streams import limits
from hitl_streams.server import Hitl
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY, served

BODY_ROUTES = ["requests", "batches", "notifications", "requests/{id}/remind", "batches/{batch}/remind"]


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    hitl = Hitl(adapters=[RecordingAdapter("chat")], secret="s")
    transport = httpx.ASGITransport(app=hitl.asgi)
    headers = {"authorization": "Bearer s"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client:
        yield client


async def _route(api: httpx.AsyncClient, route: str) -> str:
    """`route` with a real request id and batch id filled in."""
    created = await api.post(f"{API}/requests", json={"token": "seed", "message": "m", "actions": APPROVE_DENY})
    batch = await api.post(f"{API}/batches", json={"items": [{"token": "b0", "message": "x"}], "actions": APPROVE_DENY})
    assert created.status_code == batch.status_code == 201
    return f"{API}/" + route.replace("{id}", created.json()["id"]).replace("{batch}", batch.json()["batchId"])


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"]
    return str(body["error"])


# --- invalid UTF-8 and deep nesting -------------------------------------------------------------------------
@pytest.mark.parametrize("route", BODY_ROUTES)
async def test_invalid_utf8_is_a_400(api: httpx.AsyncClient, route: str) -> None:
    path = await _route(api, route)
    for body in [
        b'{"token":"\xff","message":"m","actions":[{"id":"a"}]}',
        b'{"message":"\xc3\x28"}',
        b'{"items":[{"token":"\xed\xa0\x80","message":"m"}],"actions":[{"id":"a"}]}',  # a UTF-16 surrogate
        b"\xfe\xff",
    ]:
        assert _error(await api.post(path, content=body), 400) == "Invalid JSON body"


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("depth", [limits.MAX_JSON_DEPTH + 1, 1_000, 10_000, 100_000])
async def test_deep_nesting_is_a_400_before_decoding(api: httpx.AsyncClient, route: str, depth: int) -> None:
    path = await _route(api, route)
    for body in [b"[" * depth + b"]" * depth, b'{"context":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"]:
        message = _error(await api.post(path, content=body), 400)
        assert message == f"Invalid JSON body: nested deeper than {limits.MAX_JSON_DEPTH} levels"
    unclosed = b"[" * depth  # not even valid JSON: refused for its depth alone, before any parsing
    assert "nested deeper" in _error(await api.post(path, content=unclosed), 400)


async def test_nesting_up_to_the_limit_is_accepted_and_brackets_in_strings_do_not_count(
    api: httpx.AsyncClient,
) -> None:
    inner: Any = 1
    for _ in range(limits.MAX_JSON_DEPTH - 2):  # the body and the context object are two levels
        inner = [inner]
    ok = await api.post(f"{API}/requests", json=_request(token="deep", context={"d": inner}))
    assert ok.status_code == 201, ok.text
    deeper = await api.post(f"{API}/requests", json=_request(token="deeper", context={"d": [inner]}))
    assert "nested deeper" in _error(deeper, 400)
    brackets = _request(token="s", message="[" * 5000 + '\\"{' * 100, context={"k": "{" * 5000, "e": "\\"})
    assert (await api.post(f"{API}/requests", json=brackets)).status_code == 201


# --- bounded fields -------------------------------------------------------------------------------------
def _request(**extra: Any) -> dict[str, Any]:
    return {"token": "t", "message": "m", "actions": APPROVE_DENY, **extra}


def _actions(n: int) -> list[dict[str, Any]]:
    return [{"id": f"a{i}"} for i in range(n)]


ACTION_CASES = [
    ([{"id": "x" * (limits.MAX_ACTION_ID + 1)}], "action id must be at most"),
    ([{"id": "has space"}], "action id must be at most"),
    ([{"id": "nul\u0000"}], "action id must be at most"),
    ([{"id": "é"}], "action id must be at most"),
    (_actions(limits.MAX_ACTIONS + 1), f"at most {limits.MAX_ACTIONS} actions"),
    (_actions(5_000), f"at most {limits.MAX_ACTIONS} actions"),
    (
        [
            {
                "id": "a",
                "fields": {f"f{i}": {"kind": "text", "label": "L"} for i in range(limits.MAX_FIELDS_PER_ACTION + 1)},
            }
        ],
        f"more than {limits.MAX_FIELDS_PER_ACTION} fields",
    ),
    ([{"id": "a", "label": "L" * (limits.MAX_LABEL + 1)}], "label must be at most"),
    ([{"id": "a", "submitLabel": "L" * (limits.MAX_LABEL + 1)}], "submitLabel must be at most"),
    ([{"id": "a", "closeLabel": "L" * (limits.MAX_LABEL + 1)}], "closeLabel must be at most"),
    ([{"id": "a", "fields": {"k": {"kind": "text", "label": "L" * (limits.MAX_LABEL + 1)}}}], "label must be at most"),
    ([{"id": "a", "fields": {"k" * (limits.MAX_FIELD_KEY + 1): {"kind": "text", "label": "L"}}}], "field key"),
    (
        [{"id": "a", "fields": {"k": {"kind": "select", "label": "L", "options": ["o"] * (limits.MAX_OPTIONS + 1)}}}],
        f"more than {limits.MAX_OPTIONS} options",
    ),
    (
        [{"id": "a", "fields": {"k": {"kind": "select", "label": "L", "options": ["o" * (limits.MAX_LABEL + 1)]}}}],
        "an option of select field",
    ),
]


@pytest.mark.parametrize(("actions", "expected"), ACTION_CASES)
async def test_actions_out_of_bounds_are_a_400(api: httpx.AsyncClient, actions: list[Any], expected: str) -> None:
    assert expected in _error(await api.post(f"{API}/requests", json=_request(actions=actions)), 400)
    batch = {"items": [{"token": "i", "message": "m"}], "actions": actions}
    assert expected in _error(await api.post(f"{API}/batches", json=batch), 400)


async def test_actions_at_the_bounds_are_accepted(api: httpx.AsyncClient) -> None:
    at_bounds = [
        {
            "id": "a" * limits.MAX_ACTION_ID,
            "label": "L" * limits.MAX_LABEL,
            "fields": {
                f"f{i}": {"kind": "select", "label": "L", "options": [str(n) for n in range(limits.MAX_OPTIONS)]}
                for i in range(limits.MAX_FIELDS_PER_ACTION)
            },
        },
        *[{"id": f"ok_.:-{i}"} for i in range(limits.MAX_ACTIONS - 1)],
    ]
    assert (await api.post(f"{API}/requests", json=_request(actions=at_bounds))).status_code == 201


CHANNELS = [
    ("inbox:" + "x" * 10_000, f"channel must be at most {limits.MAX_CHANNEL} characters"),
    ("inbox:a\u0000b", "channel must not contain control characters"),
    ("chat:\r\nX-Injected: 1", "channel must not contain control characters"),
]


@pytest.mark.parametrize(("channel", "expected"), CHANNELS)
async def test_channels_out_of_bounds_are_a_400_on_every_route(
    api: httpx.AsyncClient, channel: str, expected: str
) -> None:
    bodies = {
        "requests": _request(channel=channel),
        "batches": {"items": [{"token": "i", "message": "m"}], "actions": APPROVE_DENY, "channel": channel},
        "notifications": {"message": "m", "channel": channel},
        "requests/{id}/remind": {"kind": "escalate", "channel": channel, "mode": "redeliver"},
        "batches/{batch}/remind": {"kind": "escalate", "channel": channel},
    }
    for route, body in bodies.items():
        assert _error(await api.post(await _route(api, route), json=body), 400) == expected, route


async def test_tokens_out_of_bounds_are_a_400(api: httpx.AsyncClient) -> None:
    long = "t" * (limits.MAX_TOKEN + 1)
    message = _error(await api.post(f"{API}/requests", json=_request(token=long)), 400)
    assert message == f"token must be at most {limits.MAX_TOKEN} characters"
    batch = {"items": [{"token": "ok", "message": "m"}, {"token": long, "message": "m"}], "actions": APPROVE_DENY}
    message = _error(await api.post(f"{API}/batches", json=batch), 400)
    assert message == f"items[1].token must be at most {limits.MAX_TOKEN} characters"
    assert (await api.post(f"{API}/requests", json=_request(token="t" * limits.MAX_TOKEN))).status_code == 201


# --- amplification ----------------------------------------------------------------------------------------
async def test_too_many_batch_items_is_a_413(api: httpx.AsyncClient) -> None:
    items = [{"token": f"t{i}", "message": "m"} for i in range(limits.MAX_BATCH_ITEMS + 1)]
    message = _error(await api.post(f"{API}/batches", json={"items": items, "actions": APPROVE_DENY}), 413)
    assert message == f"A batch takes at most {limits.MAX_BATCH_ITEMS} items (got {limits.MAX_BATCH_ITEMS + 1})"


async def test_a_batch_whose_records_would_store_too_much_is_a_413(api: httpx.AsyncClient) -> None:
    """The issue's attack: a body under 1 MiB whose context is copied into every item record."""
    context = {"blob": "x" * 900_000}
    items = [{"token": f"t{i}", "message": "m"} for i in range(400)]
    body = json.dumps({"items": items, "actions": APPROVE_DENY, "context": context}).encode()
    assert len(body) < limits.MAX_BODY_BYTES
    message = _error(await api.post(f"{API}/batches", content=body), 413)
    assert message.startswith("Batch too large to store: its 400 item records would take about ")
    assert f"(limit {limits.MAX_BATCH_STORED_BYTES})" in message and "smaller context or fewer items" in message
    # Nothing was created: the same token is free for a batch within the bound.
    small = {"items": items[:10], "actions": APPROVE_DENY, "context": context}
    assert (await api.post(f"{API}/batches", json=small)).status_code == 201


# --- a body that never arrives ----------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["requests", "batches", "notifications", "requests/{id}/timeout"])
async def test_a_client_that_declares_a_body_and_never_sends_it_gets_408(route: str) -> None:
    hitl = Hitl(adapters=[RecordingAdapter("chat")], secret="s", body_timeout=0.5)
    async with served(hitl.asgi, timeout_keep_alive=5) as url:
        transport = httpx.ASGITransport(app=hitl.asgi)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"authorization": "Bearer s"}
        ) as api:
            path = await _route(api, route)
        host, port = url.removeprefix("http://").split(":")

        def slow_client() -> bytes:
            with socket.create_connection((host, int(port)), timeout=15) as sock:
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{}"
                )
                sock.sendall(head.encode())
                received = b""
                while chunk := sock.recv(65536):  # until the server closes the connection
                    received += chunk
                return received

        reply = await asyncio.to_thread(slow_client)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", reply
    assert b"connection: close" in rest.lower()
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1]) == {"error": "Request body not received within 0.5 s"}


@pytest.mark.parametrize(
    ("path", "auth", "status"),
    [(f"{API}/nope", "Bearer s", 404), (f"{API}/requests", "Bearer wrong", 401), ("/healthz", "Bearer s", 405)],
)
async def test_an_answer_before_the_body_is_read_closes_the_connection(path: str, auth: str, status: int) -> None:
    """Else the client could keep trickling in the announced body after the answer, holding the connection."""
    hitl = Hitl(adapters=[RecordingAdapter("chat")], secret="s", body_timeout=0.5)
    async with served(hitl.asgi, timeout_keep_alive=5) as url:
        host, port = url.removeprefix("http://").split(":")

        def trickling_client() -> bytes:
            with socket.create_connection((host, int(port)), timeout=15) as sock:
                head = f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n{{}}"
                sock.sendall(head.encode())
                received = b""
                while chunk := sock.recv(65536):  # until the server closes the connection
                    received += chunk
                return received

        reply = await asyncio.to_thread(trickling_client)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply
    assert b"connection: close" in reply.lower()
