"""Two servers (replicas) on one state: a create retried on the other replica while the first one is
still delivering waits for that delivery instead of making a second one (SPEC §5.3: one record, one
delivery)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hitl_streams import State
from hitl_streams.server import Hitl, core
from hitl_streams.testing.recording import RecordingAdapter

API = "/.well-known/hitl/v1"
BODY = {"token": "tok-r", "message": "Ship it?", "actions": [{"id": "approve"}], "channel": "chat"}

Replicas = tuple[RecordingAdapter, RecordingAdapter, httpx.AsyncClient, httpx.AsyncClient]


async def _client(server: Hitl) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.asgi), base_url="http://h") as http:
        yield http


@contextlib.asynccontextmanager
async def _replicas(state: State) -> AsyncIterator[Replicas]:
    """Two servers on `state`, each with its own recording "chat" channel, and an HTTP client for each."""
    first_chat, second_chat = RecordingAdapter("chat"), RecordingAdapter("chat")
    first = Hitl(state=state, adapters=[first_chat], secret="")
    second = Hitl(state=state, adapters=[second_chat], secret="")
    async with first, second:
        http_first: Any = _client(first)
        http_second: Any = _client(second)
        a, b = await anext(http_first), await anext(http_second)
        try:
            yield first_chat, second_chat, a, b
        finally:
            await a.aclose()
            await b.aclose()


async def _until_sending(*chats: RecordingAdapter) -> None:
    deadline = time.monotonic() + 30  # a busy machine is slow, not wrong
    while time.monotonic() < deadline:
        if any(chat.sent for chat in chats):
            return
        await asyncio.sleep(0.001)
    raise AssertionError("no delivery started")


async def test_a_retry_on_another_replica_waits_for_the_delivery_in_flight(state: State) -> None:
    async with _replicas(state) as (first_chat, second_chat, a, b):
        gate = first_chat.pause("send")
        original = asyncio.create_task(a.post(f"{API}/requests", json=BODY))
        await _until_sending(first_chat)
        retry = asyncio.create_task(b.post(f"{API}/requests", json=BODY))
        await asyncio.sleep(0.1)
        assert not retry.done()  # waits for the other replica instead of delivering again
        gate.set()
        responses = await asyncio.gather(original, retry)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert len(first_chat.sent) + len(second_chat.sent) == 1


async def test_simultaneous_first_creates_on_two_replicas_deliver_once_and_agree(state: State) -> None:
    """Both replicas receive the first POST of one token at the same moment: one record, one delivery, and
    every caller gets the same id and the delivered external id (not an empty one)."""
    async with _replicas(state) as (first_chat, second_chat, a, b):
        gates = [first_chat.pause("send"), second_chat.pause("send")]
        posts = [asyncio.create_task(c.post(f"{API}/requests", json=BODY)) for c in (a, b, a, b, a, b)]
        await _until_sending(first_chat, second_chat)
        await asyncio.sleep(0.05)
        assert not any(p.done() for p in posts)  # nobody answers before the delivery is done
        for gate in gates:
            gate.set()
        responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [201] * 6
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies) and bodies[0]["externalRef"]
    assert len(first_chat.sent) + len(second_chat.sent) == 1


async def test_a_delivery_slower_than_the_lease_keeps_it(state: State, monkeypatch: pytest.MonkeyPatch) -> None:
    """The channel takes longer than the lease's time to live: the holder renews it, so a retry on the other
    replica still waits for that delivery instead of sending a second message."""
    # A 1 s lease is renewed every third of it: a loop held up for half a second still renews in time.
    monkeypatch.setattr(core, "_DELIVERY_LEASE_MS", 1000)
    async with _replicas(state) as (first_chat, second_chat, a, b):
        gate = first_chat.pause("send")
        original = asyncio.create_task(a.post(f"{API}/requests", json=BODY))
        await _until_sending(first_chat)
        await asyncio.sleep(2.5)  # two and a half times the lease's time to live
        retry = asyncio.create_task(b.post(f"{API}/requests", json=BODY))
        await asyncio.sleep(0.3)
        assert not retry.done()
        gate.set()
        responses = await asyncio.gather(original, retry)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert len(first_chat.sent) + len(second_chat.sent) == 1


async def test_a_failed_delivery_frees_the_request_for_the_next_retry(state: State) -> None:
    """The channel failed (502): the retry delivers at once, without waiting for a lease to lapse."""
    chat = RecordingAdapter("chat")
    chat.fail("send")
    server = Hitl(state=state, adapters=[chat], secret="")
    async with server:
        http: Any = _client(server)
        client = await anext(http)
        try:
            failed = await client.post(f"{API}/requests", json=BODY)
            assert failed.status_code == 502  # recorded, not delivered
            # Well before the 30 s lease would lapse, however busy the machine.
            retried = await asyncio.wait_for(client.post(f"{API}/requests", json=BODY), timeout=15)
        finally:
            await client.aclose()
    assert retried.status_code == 201
    assert len(chat.sent) == 2  # the failed attempt and the one that delivered
    assert retried.json()["externalRef"]
