"""`POST requests` on `StreamState` through the ASGI app: the delivery lease is taken in the create's own
write and given back in the write that records the delivery, so a create is two script calls. The audit
trail is the same three events; exactly one delivery under concurrent retries; replay byte-identical."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hitl_streams import StreamState
from hitl_streams.server import Hitl
from hitl_streams.server.channels import HumanRequest
from hitl_streams.testing.recording import RecordingAdapter
from hitl_streams.testing.snapshot import snapshot

from .support import API, APPROVE_DENY

pytestmark = pytest.mark.redis

_SCRIPTS = ("evalsha", "eval")
"""Script calls as clients send them (commandstats also counts the commands a script runs: SET, DEL, ...;
scripts run no scripts). The lease release and renewal are EVALs."""


class LeaseWatchingAdapter(RecordingAdapter):
    """Records, at each send, whether the request's delivery lease is held in Redis."""

    def __init__(self, redis: Redis, state: StreamState) -> None:
        super().__init__("chat")
        self._redis, self._state = redis, state
        self.lease_held: list[bool] = []

    async def send(self, request: HumanRequest) -> str:
        held = await self._redis.exists(self._state.keys.lease(f"deliver:{request.id}"))
        self.lease_held.append(bool(held))
        return await super().send(request)


@pytest.fixture
async def served(redis: Redis, table_name: str) -> AsyncIterator[tuple[Hitl, StreamState, LeaseWatchingAdapter]]:
    state = StreamState(redis, table_name=table_name)
    chat = LeaseWatchingAdapter(redis, state)
    async with Hitl(state=state, adapters=[chat], secret="") as hitl:
        yield hitl, state, chat


async def _post(hitl: Hitl, token: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
        return await http.post(f"{API}/requests", json={"token": token, "message": "Deploy?", "actions": APPROVE_DENY})


async def _script_calls(redis: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in _SCRIPTS}


async def test_a_create_is_two_script_calls_with_the_same_audit_trail(
    redis: Redis, served: tuple[Hitl, StreamState, LeaseWatchingAdapter]
) -> None:
    hitl, state, chat = served
    await _post(hitl, "warm-up")  # schema applied, script loaded
    before = await _script_calls(redis)
    created = await _post(hitl, "t1")
    after = await _script_calls(redis)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert chat.lease_held == [True, True]  # held while sending ...
    assert await redis.exists(state.keys.lease(f"deliver:{request_id}")) == 0  # ... and given back
    assert {name: after[name] - before[name] for name in _SCRIPTS} == {"evalsha": 2, "eval": 0}
    trail = [type(r.event).__name__ for r in await state.audit(request_id)]
    assert trail == ["RequestCreated", "RequestExternalIdSet", "RequestDelivered"]
    record = await state.get(request_id)
    assert record is not None and record.external_id == f"chat/{request_id}"
    live = await snapshot(redis, state.keys)
    await state.rebuild()
    assert await snapshot(redis, state.keys) == live


async def test_concurrent_retries_deliver_once_and_a_refused_create_leaves_no_lease(
    redis: Redis, served: tuple[Hitl, StreamState, LeaseWatchingAdapter]
) -> None:
    hitl, state, chat = served
    replies = await asyncio.gather(*(_post(hitl, "same") for _ in range(8)))
    assert {r.status_code for r in replies} == {201}
    assert len({r.text for r in replies}) == 1
    assert len(chat.sent) == 1
    assert [key async for key in redis.scan_iter(match=state.keys.lease("*"))] == []
    assert (await state.verify()).clean
