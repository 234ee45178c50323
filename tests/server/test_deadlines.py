"""Server-side deadlines and reminders: requests created with a `schedule` time out and remind on their own.

Real time made short (deadlines of tens or hundreds of milliseconds); on every state, and on real Redis for
the replica races, crashes, rebuild and verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hitl_streams import AlreadyResolvedError, Resolved, State, StreamState, TimedOut
from hitl_streams.history import events as ev
from hitl_streams.server import CallbackResolver, Hitl
from hitl_streams.server.deadlines import DeadlineRunner
from hitl_streams.server.stream_resume import StreamResumeQueue
from hitl_streams.streams.connect import connect
from hitl_streams.testing.crash import CrashableRedis
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY, Resumed

FAST = {"deadline_poll_seconds": 0.02, "deadline_lease_ms": 400}


def _hitl(state: State, resumed: Resumed, chat: RecordingAdapter, **options: Any) -> Hitl:
    # Each replica its own resume consumer, as two server processes have (two in one process would share
    # the default hostname:pid name, and read each other's pending decisions as their own).
    queue = (
        StreamResumeQueue.for_state(state, block_ms=50, consumer=uuid.uuid4().hex)
        if isinstance(state, StreamState)
        else None
    )
    return Hitl(
        state=state,
        resolver=CallbackResolver(resumed),
        adapters=[chat],
        secret="",
        resume_queue=queue,
        **{**FAST, **options},
    )


@pytest.fixture
async def server(state: State, resumed: Resumed, chat: RecordingAdapter) -> AsyncIterator[Hitl]:
    hitl = _hitl(state, resumed, chat)
    async with hitl:
        yield hitl


def _client(hitl: Hitl) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://hitl.test")


async def _create(hitl: Hitl, token: str, schedule: dict[str, Any] | None, **extra: Any) -> str:
    body: dict[str, Any] = {"token": token, "message": "Ship it?", "actions": APPROVE_DENY, **extra}
    if schedule is not None:
        body["schedule"] = schedule
    async with _client(hitl) as client:
        response = await client.post(f"{API}/requests", json=body)
    assert response.status_code == 201, response.text
    request_id: str = response.json()["id"]
    return request_id


async def _types(state: State, subject_id: str) -> list[str]:
    audit = await state.audit(subject_id)  # type: ignore[attr-defined]
    return [type(record.event).__struct_config__.tag for record in audit]


async def _eventually(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def _delay(after: str, message: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "remind", "timing": {"kind": "delay", "after": after}}
    if message is not None:
        entry["message"] = message
    return entry


async def test_a_request_with_a_deadline_and_a_reminder_reminds_then_times_out_on_its_own(
    server: Hitl, state: State, resumed: Resumed, chat: RecordingAdapter
) -> None:
    """The issue's "done when": a 1 s deadline and a 300 ms reminder, no workflow waiting."""
    started = time.monotonic()
    request_id = await _create(server, "t-done", {"timeout": "1s", "reminders": [_delay("300ms", "Still waiting")]})
    await resumed.wait_for(1, within=10)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0  # never early
    record = await state.get(request_id)
    assert record is not None and isinstance(record.result, TimedOut)
    assert [(token, type(result)) for token, result in resumed.calls] == [("t-done", TimedOut)]
    assert [n.message for n in chat.notifications] == ["Still waiting"]
    types = await _types(state, request_id)
    assert types.count("schedule.set") == 1
    assert types.count("request.reminded") == 1
    assert types.count("request.timed_out") == 1
    assert types.index("schedule.set") < types.index("request.reminded") < types.index("request.timed_out")
    fires = [r.event for r in await state.audit(request_id) if isinstance(r.event, ev.ScheduleFired)]  # type: ignore[attr-defined]
    assert [(f.fire, f.outcome) for f in fires] == [(0, "reminded"), (-1, "timed_out")]
    assert all(f.late_ms >= 0 for f in fires)
    await asyncio.sleep(0.2)
    assert len(resumed.calls) == 1  # nothing fires again


async def test_a_decision_cancels_the_rest_of_the_schedule(
    server: Hitl, state: State, resumed: Resumed, chat: RecordingAdapter
) -> None:
    request_id = await _create(server, "t-decided", {"timeout": "400ms", "reminders": [_delay("200ms")]})
    await server.inbox.resolve(request_id, action_id="approve")
    await asyncio.sleep(0.7)
    record = await state.get(request_id)
    assert record is not None and isinstance(record.result, Resolved)
    assert chat.notifications == []
    types = await _types(state, request_id)
    assert "request.timed_out" not in types and "request.reminded" not in types
    assert types.count("schedule.ended") == 1
    assert [type(r) for _, r in resumed.calls] == [Resolved]


async def test_a_human_decision_racing_the_deadline_has_one_winner(
    server: Hitl, state: State, resumed: Resumed
) -> None:
    ids = [await _create(server, f"t-race-{n}", {"timeout": "150ms"}) for n in range(10)]
    await asyncio.sleep(0.13)

    async def decide(request_id: str) -> None:
        with contextlib.suppress(AlreadyResolvedError):  # lost to the deadline
            await server.inbox.resolve(request_id, action_id="approve")

    await asyncio.gather(*(decide(i) for i in ids))
    await asyncio.sleep(0.4)
    for request_id in ids:
        types = await _types(state, request_id)
        assert types.count("request.resolved") + types.count("request.timed_out") == 1
    assert len(resumed.calls) == 10


async def test_reminders_escalations_and_batches(
    server: Hitl, state: State, resumed: Resumed, chat: RecordingAdapter
) -> None:
    async with _client(server) as client:
        response = await client.post(
            f"{API}/batches",
            json={
                "items": [{"token": "b-1", "message": "one"}, {"token": "b-2", "message": "two"}],
                "actions": APPROVE_DENY,
                "schedule": {
                    "timeout": "600ms",
                    "reminders": [
                        {
                            "kind": "escalate",
                            "channel": "inbox",
                            "message": "Escalating",
                            "timing": {"kind": "delay", "after": "200ms"},
                        }
                    ],
                },
            },
        )
    assert response.status_code == 201, response.text
    batch_id = response.json()["batchId"]
    await resumed.wait_for(2, within=10)
    assert {type(r) for _, r in resumed.calls} == {TimedOut}
    types = await _types(state, batch_id)
    assert types.count("batch.escalated") == 1
    assert types.count("schedule.fired") == 2


async def test_a_deadline_that_passed_while_no_server_ran_fires_once_late(
    state: State, resumed: Resumed, chat: RecordingAdapter
) -> None:
    down = _hitl(state, resumed, chat)  # never started: no runner
    request_id = await _create(down, "t-late", {"timeout": "200ms", "reminders": [_delay("50ms"), _delay("100ms")]})
    await asyncio.sleep(0.5)
    assert resumed.calls == []
    up = _hitl(state, resumed, chat)
    async with up:
        await resumed.wait_for(1, within=10)
        await asyncio.sleep(0.1)
    fires = [r.event for r in await state.audit(request_id) if isinstance(r.event, ev.ScheduleFired)]  # type: ignore[attr-defined]
    assert [(f.fire, f.skipped, f.outcome) for f in fires] == [(-1, 2, "timed_out")]
    assert fires[0].late_ms >= 250
    assert chat.notifications == []  # moot reminders are not sent after the deadline


async def test_a_bad_schedule_is_a_400(server: Hitl) -> None:
    bad = [
        {"timeout": "soon"},
        {"timeout": -1},
        {"timeout": "1s", "deadline": "2026-11-27T18:00:00.000Z"},
        {"deadline": "tomorrow"},
        {"reminders": [{"kind": "remind", "timing": {"kind": "at", "clock": "25:00"}}]},
        {"reminders": "often"},
        {"cron": "* * * * *"},
        [],
    ]
    async with _client(server) as client:
        for n, schedule in enumerate(bad):
            body = {"token": f"bad-{n}", "message": "m", "actions": APPROVE_DENY, "schedule": schedule}
            response = await client.post(f"{API}/requests", json=body)
            assert response.status_code == 400, (schedule, response.text)
            assert "error" in response.json()


async def test_a_retried_create_sets_the_schedule_once(server: Hitl, state: State) -> None:
    schedule = {"timeout": "1h"}
    first = await _create(server, "t-again", schedule)
    second = await _create(server, "t-again", schedule)
    assert first == second
    assert (await _types(state, first)).count("schedule.set") == 1


async def test_without_a_schedule_nothing_is_scheduled(server: Hitl, state: State) -> None:
    request_id = await _create(server, "t-plain", None)
    assert await state.get_schedule(request_id) is None  # type: ignore[attr-defined]
    assert await state.next_due_ms() is None  # type: ignore[attr-defined]


# --- real Redis: replicas, crashes, rebuild -------------------------------------------------------------


@pytest.fixture
def stream_state(redis: Redis, table_name: str) -> StreamState:
    return StreamState(redis, table_name=table_name)


@pytest.mark.redis
async def test_two_replicas_fire_each_item_exactly_once(redis: Redis, table_name: str) -> None:
    resumed = Resumed()
    chats = [RecordingAdapter("chat"), RecordingAdapter("chat")]
    replicas = [_hitl(StreamState(redis, table_name=table_name), resumed, chat) for chat in chats]
    count = 200
    ids = []
    for n in range(count):
        ids.append(await _create(replicas[n % 2], f"rep-{n}", {"timeout": "300ms", "reminders": [_delay("100ms")]}))
    async with replicas[0], replicas[1]:
        await resumed.wait_for(count, within=30)
        await asyncio.sleep(0.3)
    assert len(resumed.calls) == count
    state = StreamState(redis, table_name=table_name)
    reminded = 0
    for request_id in ids:
        audit = [r.event for r in await state.audit(request_id)]
        fires = [e for e in audit if isinstance(e, ev.ScheduleFired)]
        # The reminder ran once, or (on a machine too busy to reach it before the deadline) was folded
        # into the deadline's fire; never twice, and the deadline exactly once.
        sent = [f for f in fires if f.fire == 0]
        deadline = [f for f in fires if f.fire == -1]
        assert len(deadline) == 1 and len(sent) + deadline[0].skipped == 1, fires
        assert sum(isinstance(e, ev.RequestReminded) for e in audit) == len(sent)
        assert sum(isinstance(e, ev.RequestTimedOut) for e in audit) == 1
        reminded += len(sent)
    assert sum(len(c.notifications) for c in chats) == reminded
    assert await state.due_count() == 0


@pytest.mark.redis
async def test_a_replica_that_dies_holding_due_items_hands_them_over(redis: Redis, table_name: str) -> None:
    resumed, chat = Resumed(), RecordingAdapter("chat")
    state = StreamState(redis, table_name=table_name)
    doomed = _hitl(state, resumed, chat)
    ids = [await _create(doomed, f"crash-{n}", {"timeout": "100ms"}) for n in range(5)]
    await asyncio.sleep(0.15)
    runner = doomed.deadlines
    assert runner is not None
    # The doomed replica takes every due subject's lease and dies before firing (its leases stay).
    for request_id in ids:
        assert await state.acquire_lease(f"due:{request_id}", FAST["deadline_lease_ms"]) is not None
    survivor = _hitl(StreamState(redis, table_name=table_name), resumed, chat)
    started = time.monotonic()
    async with survivor:
        await resumed.wait_for(5, within=10)
    assert time.monotonic() - started >= FAST["deadline_lease_ms"] / 1000 * 0.8
    for request_id in ids:
        assert (await _types(state, request_id)).count("request.timed_out") == 1


@pytest.mark.redis
async def test_a_reminder_sent_before_a_crash_is_not_sent_again(redis: Redis, table_name: str) -> None:
    resumed, chat = Resumed(), RecordingAdapter("chat")
    state = StreamState(redis, table_name=table_name)
    hitl = _hitl(state, resumed, chat)
    request_id = await _create(hitl, "sent", {"timeout": "1h", "reminders": [_delay("50ms")]})
    await asyncio.sleep(0.1)
    # A replica sent the reminder, then died before recording the fire.
    from hitl_streams.server.wire import RemindBody

    await hitl.core.remind(request_id, RemindBody(kind="remind", message="sent before the crash"))
    runner = DeadlineRunner(hitl.core, state)
    assert await runner.fire(request_id)
    assert [n.message for n in chat.notifications] == ["sent before the crash"]
    fires = [r.event for r in await state.audit(request_id) if isinstance(r.event, ev.ScheduleFired)]
    assert [(f.fire, f.outcome) for f in fires] == [(0, "reminded")]
    assert not await runner.fire(request_id)  # recorded: never again


@pytest.mark.redis
async def test_rebuild_and_verify_reproduce_the_due_index(redis: Redis, table_name: str) -> None:
    resumed, chat = Resumed(), RecordingAdapter("chat")
    state = StreamState(redis, table_name=table_name)
    hitl = _hitl(state, resumed, chat)
    waiting = await _create(hitl, "wait", {"timeout": "1h", "reminders": [_delay("30m")]})
    fired = await _create(hitl, "fired", {"timeout": "100ms"})
    await _create(hitl, "plain", None)
    async with hitl:
        await resumed.wait_for(1, within=10)
        await asyncio.sleep(0.1)
    before = await redis.zrange(state.keys.idx_due, 0, -1, withscores=True)
    assert [m.decode() if isinstance(m, bytes) else m for m, _ in before] == [waiting]
    assert (await state.verify()).clean
    await redis.delete(state.keys.idx_due, state.keys.schedule_next(waiting))
    assert not (await state.verify()).clean
    await state.rebuild()
    assert await redis.zrange(state.keys.idx_due, 0, -1, withscores=True) == before
    assert (await state.verify()).clean
    assert (await state.get_schedule(fired)) is not None


@pytest.mark.redis
async def test_the_runner_survives_dropped_redis_connections(redis: Redis, table_name: str) -> None:
    """Every Redis connection killed while an item waits: it still fires, once."""
    resumed, chat = Resumed(), RecordingAdapter("chat")
    state = StreamState(redis, table_name=table_name)
    hitl = _hitl(state, resumed, chat)
    async with hitl:
        request_id = await _create(hitl, "restart", {"timeout": "300ms"})
        await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
        await resumed.wait_for(1, within=10)
    assert (await _types(state, request_id)).count("request.timed_out") == 1


@pytest.mark.redis
@pytest.mark.slow
async def test_schedules_survive_a_redis_crash_and_restart(crashable_redis: CrashableRedis) -> None:
    """Redis `kill -9`'d (AOF, fsync always) and restarted while items wait: each fires once, after."""
    client = connect(crashable_redis.url)
    try:
        resumed, chat = Resumed(), RecordingAdapter("chat")
        state = StreamState(client, table_name="crash.human_requests")
        hitl = _hitl(state, resumed, chat)
        ids = [await _create(hitl, f"aof-{n}", {"timeout": "1200ms", "reminders": [_delay("600ms")]}) for n in range(5)]
        async with hitl:
            await crashable_redis.crash_and_restart()
            await resumed.wait_for(5, within=20)
            await asyncio.sleep(0.2)
        for request_id in ids:
            audit = [r.event for r in await state.audit(request_id)]
            deadline = [e for e in audit if isinstance(e, ev.ScheduleFired) and e.fire == -1]
            reminder = [e for e in audit if isinstance(e, ev.ScheduleFired) and e.fire == 0]
            assert len(deadline) == 1 and len(reminder) + deadline[0].skipped == 1
            assert sum(isinstance(e, ev.RequestTimedOut) for e in audit) == 1
        assert (await state.verify()).clean
    finally:
        await client.aclose()
