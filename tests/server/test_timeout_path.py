"""`POST requests/{id}/timeout` on `StreamState` through the ASGI app: the timeout is decided on the record
the state knows (its subject cache), with no read first, and still answers as before: 404 for an unknown
id, the stored result for a resolved request (also one resolved by another replica the cache missed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hitl_streams import StreamState, TimedOut
from hitl_streams.server import Hitl
from hitl_streams.testing.contract import new_request, resolved_result
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY

pytestmark = pytest.mark.redis

_COUNTED = ("evalsha", "eval", "get")


@pytest.fixture
async def served(redis: Redis, table_name: str) -> AsyncIterator[tuple[Hitl, StreamState, RecordingAdapter]]:
    state = StreamState(redis, table_name=table_name)
    chat = RecordingAdapter("chat")
    async with Hitl(state=state, adapters=[chat], secret="") as hitl:
        yield hitl, state, chat


async def _post(hitl: Hitl, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
        return await http.post(f"{API}/{path}", json=body)


async def _calls(redis: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in _COUNTED}


async def test_a_timeout_of_a_request_the_server_made_is_one_script_call(
    redis: Redis, served: tuple[Hitl, StreamState, RecordingAdapter]
) -> None:
    hitl, state, chat = served
    created = (await _post(hitl, "requests", {"token": "t1", "message": "m", "actions": APPROVE_DENY})).json()
    before = await _calls(redis)
    response = await _post(hitl, f"requests/{created['id']}/timeout")
    after = await _calls(redis)
    expected = TimedOut(id=created["id"], external_ref=created["externalRef"])
    assert response.json() == {
        "result": {"type": "TIMED_OUT", "id": created["id"], "externalRef": created["externalRef"]}
    }
    # One EVALSHA, and the one GET is the compare-and-set inside it (commandstats counts a script's
    # commands): no GET of the record before it.
    assert {name: after[name] - before[name] for name in _COUNTED} == {"evalsha": 1, "eval": 0, "get": 1}
    assert chat.updates == [(created["externalRef"], expected)]
    record = await state.get(created["id"])
    assert record is not None and record.result == expected


async def test_a_request_resolved_elsewhere_answers_with_the_stored_result_and_writes_nothing(
    redis: Redis, table_name: str, served: tuple[Hitl, StreamState, RecordingAdapter]
) -> None:
    hitl, state, chat = served
    await state.create(new_request("r1"))  # cached here as pending
    replica = StreamState(redis, table_name=table_name)
    decided = resolved_result("r1")
    await replica.resolve("r1", decided)
    length = await redis.xlen(state.keys.events)
    response = await _post(hitl, "requests/r1/timeout")
    assert response.status_code == 200
    assert response.json()["result"]["type"] == "RESOLVED"
    assert response.json()["result"]["actionId"] == decided.action_id
    assert await redis.xlen(state.keys.events) == length
    assert chat.updates == []


async def test_an_unknown_request_is_404(served: tuple[Hitl, StreamState, RecordingAdapter]) -> None:
    hitl, _, _ = served
    response = await _post(hitl, "requests/nope/timeout")
    assert (response.status_code, response.json()) == (404, {"error": 'Unknown human request "nope"'})


async def test_resolve_from_writes_nothing_when_decide_raises(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await state.create(new_request("r1"))
    length = await redis.xlen(state.keys.events)

    def refuse(_: object) -> TimedOut:
        raise LookupError("not from this record")

    with pytest.raises(LookupError):
        await state.resolve_from("r1", refuse)
    assert await redis.xlen(state.keys.events) == length
    record = await state.get("r1")
    assert record is not None and record.status == "pending"
