"""`StreamResumeQueue` against a real Redis: decisions in the history stream drive resumption through a
consumer group, across restarts and crashes.

Every test runs on the real `StreamState`: its history stream is what the queue reads.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from hitl_streams import StreamState
from hitl_streams.history.events import ResumeAttempted, ResumeSucceeded
from hitl_streams.history.keys import Keys
from hitl_streams.records import NewHumanRequest
from hitl_streams.results import HumanResult, Resolved
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.server.stream_resume import StreamResumeQueue

from .support import Resumed

FAST = RetryPolicy(initial=0.01, maximum=0.05, jitter=0)


@pytest.fixture
def keys(table_name: str) -> Keys:
    return Keys.for_table(table_name)  # the plugin's `redis` fixture deletes these keys afterwards


def stream_state(redis: Any, keys: Keys) -> StreamState:
    state = StreamState(redis, table_name=_table_of(keys))
    assert state.keys == keys
    return state


def _table_of(keys: Keys) -> str:
    return keys.prefix.replace(":", ".", 1)


async def new_request(state: StreamState, token: str) -> str:
    from hitl_streams.actions import Action

    request_id = str(uuid.uuid4())
    await state.create(
        NewHumanRequest(id=request_id, token=token, channel="inbox", message="m", actions=[Action(id="approve")])
    )
    return request_id


def hitl_for(state: StreamState, engine: Any, **queue: Any) -> Hitl:
    stream_queue = StreamResumeQueue(state.redis, state.keys, state, block_ms=100, **queue)
    return Hitl(state=state, resolver=CallbackResolver(engine), retry=FAST, resume_queue=stream_queue)


async def pending_count(redis: Any, keys: Keys) -> int:
    summary = await redis.xpending(keys.events, keys.resume_group)
    return int(summary["pending"])


async def attempts(state: StreamState, request_id: str) -> list[tuple[str, int]]:
    kinds = ("ResumeAttempted", "ResumeFailed", "ResumeSucceeded")
    trail = await state.audit(request_id)
    return [(type(r.event).__name__, r.event.attempt) for r in trail if type(r.event).__name__ in kinds]  # type: ignore[union-attr]


async def until(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.mark.redis
async def test_decisions_in_the_stream_are_resumed_and_acknowledged(redis: Any, keys: Keys) -> None:
    state, engine = stream_state(redis, keys), Resumed()
    before = await new_request(state, "early")
    await state.resolve(before, Resolved(id=before, action_id="approve", external_ref="", feedbacks={}))
    async with hitl_for(state, engine) as hitl:  # decided while no consumer ran: resumed too
        request_id = await new_request(state, "tok")
        result = await hitl.inbox.resolve(request_id, action_id="approve")
        await engine.wait_for(2)
        await until(lambda: _no_pending(redis, keys))
    assert sorted(engine.calls, key=lambda c: c[0]) == sorted(
        [("early", (await state.get(before)).result), ("tok", result)],  # type: ignore[union-attr]
        key=lambda c: c[0],
    )
    assert await attempts(state, request_id) == [("ResumeAttempted", 1), ("ResumeSucceeded", 1)]


async def pending_ids(redis: Any, keys: Keys) -> list[str]:
    rows = await redis.xpending_range(keys.events, keys.resume_group, min="-", max="+", count=1000)
    return [_text(row["message_id"]) for row in rows]


async def resolution_entry(redis: Any, keys: Keys) -> str:
    for entry_id, fields in await redis.xrange(keys.events):
        if b'"type":"request.resolved"' in fields[b"event"]:
            return _text(entry_id)
    raise AssertionError("no request.resolved entry in the stream")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _no_pending(redis: Any, keys: Keys) -> bool:
    return await pending_count(redis, keys) == 0


@pytest.mark.redis
async def test_a_failing_engine_keeps_the_entry_pending_until_it_succeeds(redis: Any, keys: Keys) -> None:
    state, engine = stream_state(redis, keys), Resumed(failures=3)
    async with hitl_for(state, engine) as hitl:
        request_id = await new_request(state, "tok")
        await hitl.inbox.resolve(request_id, action_id="approve")
        await until(lambda: _has_failed(state, request_id))
        # The decision's entry stays pending while the engine fails. (Audit events the resumer appends to
        # the same stream are read and acknowledged as they pass, so the count alone would be racy.)
        assert await resolution_entry(redis, keys) in await pending_ids(redis, keys)
        await engine.wait_for(1)
        await until(lambda: _no_pending(redis, keys))
    assert await attempts(state, request_id) == [
        ("ResumeAttempted", 1),
        ("ResumeFailed", 1),
        ("ResumeAttempted", 2),
        ("ResumeFailed", 2),
        ("ResumeAttempted", 3),
        ("ResumeFailed", 3),
        ("ResumeAttempted", 4),
        ("ResumeSucceeded", 4),
    ]


async def _has_failed(state: StreamState, request_id: str) -> bool:
    return ("ResumeFailed", 1) in await attempts(state, request_id)


@pytest.mark.redis
async def test_a_restart_hands_unfinished_work_to_the_next_server(redis: Any, keys: Keys) -> None:
    """Fails twice on the first server; a restarted server (another consumer) finishes the job."""
    state = stream_state(redis, keys)
    down = Resumed(failures=10**6)
    first = hitl_for(state, down, consumer="server-1")
    async with first:
        request_id = await new_request(state, "tok")
        await first.inbox.resolve(request_id, action_id="approve")
        await until(lambda: _failed_times(state, request_id, 2))
    # `first` stopped cleanly: the entry is claimable at once, not after the idle timeout.
    up = Resumed()
    started = time.monotonic()
    async with hitl_for(state, up, consumer="server-2", claim_idle_ms=60_000):
        await up.wait_for(1)
        await until(lambda: _no_pending(redis, keys))
    assert time.monotonic() - started < 2
    trail = await attempts(state, request_id)
    assert trail[-2:] == [("ResumeAttempted", len(trail) // 2), ("ResumeSucceeded", len(trail) // 2)]
    assert [n for name, n in trail if name == "ResumeAttempted"] == list(range(1, len(trail) // 2 + 1))


async def _failed_times(state: StreamState, request_id: str, times: int) -> bool:
    return sum(name == "ResumeFailed" for name, _ in await attempts(state, request_id)) >= times


@pytest.mark.redis
async def test_a_crashed_consumer_work_is_claimed_after_the_idle_time(redis: Any, keys: Keys) -> None:
    state = stream_state(redis, keys)
    down = Resumed(failures=10**6)
    crashed = hitl_for(state, down, consumer="crashed", claim_idle_ms=300)
    await crashed.start()
    request_id = await new_request(state, "tok")
    await crashed.inbox.resolve(request_id, action_id="approve")
    await until(lambda: _failed_times(state, request_id, 1))
    # A crash: the tasks die, nothing is handed back.
    resumer = crashed._resumer
    assert resumer is not None
    queue = crashed._queue
    assert isinstance(queue, StreamResumeQueue)
    for task in [resumer._runner, *resumer._jobs, queue._beating]:
        assert task is not None
        task.cancel()
    up = Resumed()
    async with hitl_for(state, up, consumer="survivor", claim_idle_ms=300):
        await up.wait_for(1, within=5)
        await until(lambda: _no_pending(redis, keys))
    assert [token for token, _ in up.calls] == ["tok"]


@pytest.mark.redis
async def test_a_slow_resume_is_not_taken_over_by_another_consumer(redis: Any, keys: Keys) -> None:
    """Resolver calls that outlast the claim idle time, while the consumer's reader is held up (its one
    slot busy, the next job waiting): the heartbeat keeps the entries with their consumer, so each
    workflow is resumed once, not once per replica."""
    state = stream_state(redis, keys)
    calls: list[str] = []

    async def slow_engine(token: str, result: HumanResult) -> None:
        calls.append(token)
        await asyncio.sleep(0.8)

    first, second = await new_request(state, "t1"), await new_request(state, "t2")
    slow = hitl_for(state, slow_engine, consumer="slow", claim_idle_ms=200)
    assert slow._resumer is not None
    slow._resumer.concurrency = 1
    async with slow:
        await slow.inbox.resolve(first, action_id="approve")
        await slow.inbox.resolve(second, action_id="approve")
        await until(lambda: _called(calls))
        other = Resumed()
        async with hitl_for(state, other, consumer="other", claim_idle_ms=200):
            await until(lambda: _no_pending(redis, keys), within=5)
        assert other.calls == []
    assert sorted(calls) == ["t1", "t2"]


async def _called(calls: list[str]) -> bool:
    return bool(calls)


@pytest.mark.redis
async def test_an_entry_already_resumed_is_not_resumed_again(redis: Any, keys: Keys) -> None:
    """A consumer died after resuming but before acknowledging: the trail says it is done."""
    state = stream_state(redis, keys)
    request_id = await new_request(state, "tok")
    await state.resolve(request_id, Resolved(id=request_id, action_id="approve", external_ref="", feedbacks={}))
    await state.record(ResumeAttempted(at="2026-01-01T00:00:00.000Z", id=request_id, attempt=1))
    await state.record(ResumeSucceeded(at="2026-01-01T00:00:00.001Z", id=request_id, attempt=1))
    engine = Resumed()
    async with hitl_for(state, engine):
        await until(lambda: _no_pending_and_read(redis, keys))
        await asyncio.sleep(0.05)
    assert engine.calls == []


async def _no_pending_and_read(redis: Any, keys: Keys) -> bool:
    groups = await redis.xinfo_groups(keys.events)
    return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0


@pytest.mark.redis
async def test_stream_driven_resumption_within_50_ms(redis: Any, keys: Keys) -> None:
    state = stream_state(redis, keys)
    started: dict[str, float] = {}
    latencies: list[float] = []

    async def engine(token: str, result: HumanResult) -> None:
        latencies.append(time.perf_counter() - started[token])

    ids = {f"t{n}": await new_request(state, f"t{n}") for n in range(200)}
    async with hitl_for(state, engine) as hitl:
        await asyncio.sleep(0.05)
        for token, request_id in ids.items():
            started[token] = time.perf_counter()
            await hitl.inbox.resolve(request_id, action_id="approve")
            await asyncio.sleep(0.002)
        await until(lambda: _all_done(latencies, len(ids)))
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]

    assert p99 < 0.050, f"p99 {p99 * 1000:.1f} ms"


async def _all_done(latencies: list[float], count: int) -> bool:
    return len(latencies) >= count


def test_the_queue_needs_a_state_that_exposes_its_client() -> None:
    state = StreamState(object(), table_name="p")
    queue = StreamResumeQueue.for_state(state)
    assert queue.consumer and ":" in queue.consumer
