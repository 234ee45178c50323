"""`hitl.client()`: the in-process workflow side, end to end on `InMemoryState` and on `StreamState` (a real
Redis), including a script restarted mid-wait that picks up a decision made while it was down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from hitl_streams import CallbackResolver, Hitl, InMemoryState, Resolved, State, StreamState, TimedOut, actions
from hitl_streams.client import Pending, remind
from hitl_streams.results import HumanResult
from hitl_streams.server import RetryPolicy
from hitl_streams.server.stream_resume import StreamResumeQueue
from hitl_streams.server.wire import CreateRequestBody as CreateBody
from hitl_streams.testing import RecordingAdapter

ACTIONS = actions().approve().deny().build()


async def until(predicate: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def newest_request(hitl: Hitl) -> str:
    ids: list[str] = []

    async def created() -> bool:
        page = await hitl.inbox.list()
        ids[:] = [r.id for r in page.items]
        return bool(ids)

    await until(created)
    return ids[0]


@pytest.fixture(params=["memory", "redis-streams"])
def state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return InMemoryState()
    return StreamState(request.getfixturevalue("redis"), table_name=request.getfixturevalue("table_name"))


async def test_wait_for_a_decision(state: State) -> None:
    hitl = Hitl(state=state, adapters=[RecordingAdapter("chat")], secret="in-process-secret")
    waiting = asyncio.ensure_future(
        hitl.client().wait_for_human(message="Deploy?", actions=ACTIONS, timeout="10m", reminders=[remind.after("5m")])
    )
    request_id = await newest_request(hitl)
    decided = await hitl.inbox.resolve(request_id, action_id="approve")
    assert await asyncio.wait_for(waiting, 5) == decided
    assert len(hitl.local_waits) == 0  # nothing left behind


async def test_timeout_with_real_timers(state: State) -> None:
    hitl = Hitl(state=state, secret="")
    result = await asyncio.wait_for(hitl.client().wait_for_human(message="x", actions=ACTIONS, timeout=0.05), 5)
    assert isinstance(result, TimedOut)
    record = await hitl.inbox.get(result.id)
    assert record is not None and record.result == result


async def test_batch_and_notify(state: State) -> None:
    hitl = Hitl(state=state, secret="")
    client = hitl.client()
    pending = await client.request_human(actions=ACTIONS, items=[{"message": "a"}, {"message": "b"}])
    note = await client.notify(message="asked", after=pending)
    assert [entry.message for entry in await hitl.inbox.timeline(pending.id)] == ["asked"]
    waiting = asyncio.ensure_future(client.wait_for_human(pending, timeout="1h"))
    await hitl.inbox.resolve(pending.ids[1], action_id="deny")
    await hitl.inbox.resolve(pending.ids[0], action_id="approve")
    results = await asyncio.wait_for(waiting, 5)
    assert [r.action_id for r in results if isinstance(r, Resolved)] == ["approve", "deny"]
    assert note.id


async def test_in_process_tokens_never_reach_the_configured_resolver(state: State) -> None:
    """The Hitl resumes its own in-process waits; its resolver (an engine) only sees engine tokens."""
    seen: list[str] = []

    async def engine(token: str, result: HumanResult) -> None:
        seen.append(token)

    queue = StreamResumeQueue.for_state(state, block_ms=50) if isinstance(state, StreamState) else None
    hitl = Hitl(
        state=state,
        resolver=CallbackResolver(engine),
        secret="",
        retry=RetryPolicy(initial=0.01, maximum=0.05, jitter=0),
        resume_queue=queue,
    )
    async with hitl:
        waiting = asyncio.ensure_future(hitl.client().wait_for_human(message="x", actions=ACTIONS))
        request_id = await newest_request(hitl)
        await hitl.inbox.resolve(request_id, action_id="approve")
        assert isinstance(await asyncio.wait_for(waiting, 5), Resolved)
        # An engine's request on the same Hitl is still resumed through the resolver.
        created = await hitl.core.create_request(
            msgspec.convert({"token": "engine-token-1", "message": "y", "actions": [{"id": "approve"}]}, CreateBody)
        )
        await hitl.inbox.resolve(created.id, action_id="approve")

        async def engine_resumed() -> bool:
            return seen == ["engine-token-1"]

        await until(engine_resumed)
        if isinstance(state, StreamState):  # the stream consumer handled the in-process decision too, as a no-op

            async def consumed() -> bool:
                trail = await state.audit(request_id)
                return any(type(r.event).__name__ == "ResumeSucceeded" for r in trail)

            await until(consumed)
    assert seen == ["engine-token-1"]


@pytest.mark.redis
async def test_a_restarted_script_gets_the_decision_made_while_it_was_down(redis: Any, table_name: str) -> None:
    # First run: create the request, save the Pending, stop (the process "dies" before waiting).
    first = Hitl(state=StreamState(redis, table_name=table_name), secret="")
    pending = await first.client().request_human(message="Deploy?", actions=ACTIONS)
    saved = msgspec.json.encode(pending)
    del first

    # While the script is down, a reviewer decides on another replica.
    replica = Hitl(state=StreamState(redis, table_name=table_name), secret="")
    decided = await replica.inbox.resolve(pending.id, action_id="deny")

    # Second run: a new Hitl and client, the Pending reloaded from storage.
    second = Hitl(state=StreamState(redis, table_name=table_name), secret="")
    reloaded = msgspec.json.decode(saved, type=Pending)
    result = await asyncio.wait_for(second.client().wait_for_human(reloaded, timeout="1h"), 5)
    assert result == decided


@pytest.mark.redis
async def test_a_restarted_script_sees_a_decision_made_by_another_process_while_waiting(
    redis: Any, table_name: str
) -> None:
    first = Hitl(state=StreamState(redis, table_name=table_name), secret="")
    pending = await first.client().request_human(message="Deploy?", actions=ACTIONS)
    saved = msgspec.json.encode(pending)

    second = Hitl(state=StreamState(redis, table_name=table_name), secret="")
    client = second.client(poll_interval=0.02)
    waiting = asyncio.ensure_future(client.wait_for_human(msgspec.json.decode(saved, type=Pending)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    replica = Hitl(state=StreamState(redis, table_name=table_name), secret="")
    decided = await replica.inbox.resolve(pending.id, action_id="approve")
    assert await asyncio.wait_for(waiting, 5) == decided


async def test_a_reloaded_pending_on_memory_state_waits_for_the_same_hitl() -> None:
    hitl = Hitl(secret="")
    pending = await hitl.client().request_human(message="x", actions=ACTIONS)
    reloaded = msgspec.json.decode(msgspec.json.encode(pending), type=Pending)
    waiting = asyncio.ensure_future(hitl.client().wait_for_human(reloaded))  # another client object
    await asyncio.sleep(0)
    decided = await hitl.inbox.resolve(pending.id, action_id="approve")
    assert await asyncio.wait_for(waiting, 5) == decided
    # Waiting again on a decided request returns the stored decision at once.
    assert await asyncio.wait_for(hitl.client().wait_for_human(reloaded), 5) == decided
