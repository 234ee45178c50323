"""Resumption under faults (issue #12): no decision resumed twice while the server process lives, none
left behind, and one idempotency key per decision where a repeat cannot be ruled out.

Faults are real: a proxy between the client and a real Redis loses replies or answers chosen commands
with an error without running them (`hitl_streams.testing.proxy`), the resume group is destroyed under
a running server, a replica's tasks die while it holds decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from hitl_streams import StreamState
from hitl_streams.actions import Action
from hitl_streams.history.events import ResumeSucceeded
from hitl_streams.history.keys import Keys
from hitl_streams.records import NewHumanRequest
from hitl_streams.results import HumanResult, Resolved
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.server.stream_resume import StreamResumeQueue
from hitl_streams.streams.connect import connect
from hitl_streams.testing._servers import ServerProcess, resp_command
from hitl_streams.testing.proxy import ReplyDropProxy

FAST = RetryPolicy(initial=0.01, maximum=0.05, jitter=0)


class Engine:
    """Records every resume it receives (token, idempotency key); can hang to hold decisions."""

    def __init__(self, *, hang: bool = False) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.hang = hang
        self._forever = asyncio.Event()

    async def __call__(self, token: str, result: HumanResult, *, idempotency_key: str | None = None) -> None:
        self.calls.append((token, idempotency_key))
        if self.hang:
            await self._forever.wait()

    @property
    def tokens(self) -> list[str]:
        return [token for token, _ in self.calls]


async def until(predicate: Callable[[], Any], within: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not reached within {within} s")


async def new_decisions(state: StreamState, tokens: list[str]) -> dict[str, str]:
    """Create one request per token and resolve it in the state (no server involved): token -> id."""
    ids: dict[str, str] = {}
    for token in tokens:
        request_id = str(uuid.uuid4())
        await state.create(
            NewHumanRequest(id=request_id, token=token, channel="inbox", message="m", actions=[Action(id="approve")])
        )
        await state.resolve(request_id, Resolved(id=request_id, action_id="approve", external_ref="", feedbacks={}))
        ids[token] = request_id
    return ids


def hitl_on(state: StreamState, engine: Any, *, consumer: str, **queue: Any) -> Hitl:
    stream_queue = StreamResumeQueue(state.redis, state.keys, state, consumer=consumer, block_ms=50, **queue)
    return Hitl(state=state, resolver=CallbackResolver(engine), retry=FAST, resume_queue=stream_queue)


async def pending(redis: Any, keys: Keys) -> int:
    return int((await redis.xpending(keys.events, keys.resume_group))["pending"])


async def settled(redis: Any, keys: Keys) -> bool:
    """Every entry read by the group and none pending."""
    groups = await redis.xinfo_groups(keys.events)
    return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0


async def succeeded(state: StreamState, request_id: str) -> int:
    return sum(isinstance(r.event, ResumeSucceeded) for r in await state.audit(request_id))


async def decision_entry(redis: Any, keys: Keys, request_id: str) -> str:
    for entry_id, fields in await redis.xrange(keys.events):
        raw = fields[b"event"]
        if b'"type":"request.resolved"' in raw and request_id.encode() in raw:
            return entry_id.decode()
    raise AssertionError("no decision entry")


def crash(hitl: Hitl) -> None:
    """Kill a replica's background work without any clean-up (as `kill -9` would)."""
    resumer, queue = hitl._resumer, hitl._queue
    assert resumer is not None and isinstance(queue, StreamResumeQueue)
    for task in [resumer._runner, *resumer._jobs, queue._beating]:
        if task is not None:
            task.cancel()


@pytest.fixture
def keys(table_name: str) -> Keys:
    return Keys.for_table(table_name)


async def test_a_failing_record_of_the_success_never_resumes_twice(
    redis_proxy: ReplyDropProxy, redis: Any, table_name: str, keys: Keys
) -> None:
    """The engine answered; recording `resume.succeeded` fails three times: retried until it is
    recorded, and neither this server nor the next one resumes the decision again."""
    client = Redis.from_url(redis_proxy.url)
    state = StreamState(client, table_name=table_name)
    try:
        ids = await new_decisions(state, ["tok"])
        redis_proxy.fail_next(
            lambda args: args[0] == b"EVALSHA" and any(b"resume.succeeded" in a for a in args), times=3
        )
        engine = Engine()
        async with hitl_on(state, engine, consumer="first"):
            await until(lambda: succeeded(state, ids["tok"]), what="resume.succeeded recorded")
            await until(lambda: settled(redis, keys))
        assert len(redis_proxy.failed) == 3
        async with hitl_on(state, engine, consumer="second"):
            await asyncio.sleep(0.3)
            await until(lambda: settled(redis, keys))
        assert engine.tokens == ["tok"]
        assert await succeeded(state, ids["tok"]) == 1
    finally:
        await client.aclose()


async def test_a_clean_stop_lets_a_resumed_decision_be_recorded_first(
    redis_proxy: ReplyDropProxy, redis: Any, table_name: str, keys: Keys
) -> None:
    """Stopped right after the engine answered, while recording it still fails: the stop waits (within
    its grace) for the record instead of handing the decision to the next server to resume again."""
    client = Redis.from_url(redis_proxy.url)
    state = StreamState(client, table_name=table_name)
    try:
        ids = await new_decisions(state, ["tok"])
        redis_proxy.fail_next(lambda args: any(b"resume.succeeded" in a for a in args), times=4)
        engine = Engine()
        async with hitl_on(state, engine, consumer="first"):
            await until(lambda: bool(engine.calls))
        assert await succeeded(state, ids["tok"]) == 1
        async with hitl_on(state, engine, consumer="second"):
            await asyncio.sleep(0.3)
            await until(lambda: settled(redis, keys))
        assert engine.tokens == ["tok"]
    finally:
        await client.aclose()


async def test_a_failed_acknowledgement_is_retried_and_the_task_survives(
    redis_proxy: ReplyDropProxy, redis: Any, table_name: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis.from_url(redis_proxy.url)
    state = StreamState(client, table_name=table_name)
    try:
        ids = await new_decisions(state, ["tok"])
        entry = (await decision_entry(redis, keys, ids["tok"])).encode()
        redis_proxy.fail_next(lambda args: args[0].upper() == b"XACK" and entry in args, times=2)
        engine = Engine()
        with caplog.at_level(logging.WARNING, logger="hitl_streams.server"):
            async with hitl_on(state, engine, consumer="first", claim_idle_ms=60_000):
                await until(lambda: settled(redis, keys), what="the decision acknowledged")
        assert len(redis_proxy.failed) == 2
        assert engine.tokens == ["tok"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await client.aclose()


async def test_a_lost_xreadgroup_reply_does_not_strand_its_entries(
    redis_proxy: ReplyDropProxy, redis: Any, table_name: str, keys: Keys
) -> None:
    """The server handed entries to this consumer but the reply was lost (redis-py retried the read, which
    returned nothing new): the entries are found again in seconds, not after the claim idle time."""
    client = redis_proxy.client()  # redis-py's default retries: the read is sent again
    state = StreamState(client, table_name=table_name)
    try:
        tokens = [f"t{n}" for n in range(5)]
        await new_decisions(state, tokens)
        redis_proxy.drop_reply_once(lambda args: args[0].upper() == b"XREADGROUP" and args[-1] == b">")
        engine = Engine()
        async with hitl_on(state, engine, consumer="first", claim_idle_ms=60_000):
            await asyncio.wait_for(redis_proxy.fired.wait(), 5)
            await until(lambda: len(engine.calls) == len(tokens), within=10, what="every decision resumed")
            await until(lambda: settled(redis, keys))
        assert sorted(engine.tokens) == tokens
    finally:
        await client.aclose()


async def test_a_redis_error_in_the_middle_of_a_batch_delays_the_rest_only_briefly(
    redis_proxy: ReplyDropProxy, redis: Any, table_name: str, keys: Keys
) -> None:
    client = Redis.from_url(redis_proxy.url)
    state = StreamState(client, table_name=table_name)
    try:
        tokens = [f"t{n}" for n in range(8)]
        await new_decisions(state, tokens)
        audits = 0

        def third_audit_read(args: list[bytes]) -> bool:
            nonlocal audits
            if args[0].upper() == b"LRANGE" and b":audit:" in args[1]:
                audits += 1
                return audits == 3
            return False

        redis_proxy.fail_next(third_audit_read)
        engine = Engine()
        async with hitl_on(state, engine, consumer="first", claim_idle_ms=60_000):
            await until(lambda: len(engine.calls) == len(tokens), within=10, what="the whole batch resumed")
            await until(lambda: settled(redis, keys))
        assert redis_proxy.failed
        assert sorted(engine.tokens) == tokens
    finally:
        await client.aclose()


async def test_a_destroyed_group_is_recreated_at_runtime_without_skips_or_repeats(
    redis: Any, table_name: str, keys: Keys
) -> None:
    state = StreamState(redis, table_name=table_name)
    engine = Engine()
    async with hitl_on(state, engine, consumer="first") as hitl:
        before = await new_decisions(state, ["a", "b", "c"])
        await until(lambda: len(engine.calls) == 3)
        await until(lambda: settled(redis, keys))
        await redis.xgroup_destroy(keys.events, keys.resume_group)
        for token in ["d", "e"]:
            request_id = str(uuid.uuid4())
            await state.create(
                NewHumanRequest(
                    id=request_id, token=token, channel="inbox", message="m", actions=[Action(id="approve")]
                )
            )
            await hitl.inbox.resolve(request_id, action_id="approve")
        await until(lambda: len(engine.calls) >= 5, within=10, what="decisions after the destroy resumed")
        await until(lambda: settled(redis, keys))
    # A restart after another destroy: the group starts at 0 again; the history says what was resumed.
    await redis.xgroup_destroy(keys.events, keys.resume_group)
    async with hitl_on(state, engine, consumer="second"):
        await until(lambda: settled(redis, keys))
        await asyncio.sleep(0.2)
    assert sorted(engine.tokens) == ["a", "b", "c", "d", "e"]
    for request_id in before.values():
        assert await succeeded(state, request_id) == 1


async def test_a_decision_in_flight_when_the_group_is_destroyed_stays_protected(
    redis: Any, table_name: str, keys: Keys
) -> None:
    """The recreated group starts before what this server still holds: the entry in flight is in the new
    group's pending list again (another replica could take it over if this one died), resumed once."""
    state = StreamState(redis, table_name=table_name)
    release = asyncio.Event()
    calls: list[str] = []

    async def engine(token: str, result: HumanResult) -> None:
        calls.append(token)
        if token == "slow":
            await release.wait()

    async with hitl_on(state, engine, consumer="holder"):
        ids = await new_decisions(state, ["slow"])
        await until(lambda: calls == ["slow"])
        await redis.xgroup_destroy(keys.events, keys.resume_group)
        await new_decisions(state, ["after"])
        await until(lambda: "after" in calls, within=10, what="the decision after the destroy")
        entry = await decision_entry(redis, keys, ids["slow"])
        rows = await redis.xpending_range(keys.events, keys.resume_group, min="-", max="+", count=100)
        assert (entry, "holder") in {(r["message_id"].decode(), r["consumer"].decode()) for r in rows}
        release.set()
        await until(lambda: settled(redis, keys))
    assert sorted(calls) == ["after", "slow"]


IDLE_MS = 2000


async def test_a_dead_replica_decisions_are_taken_over_within_the_claim_idle_time(
    redis: Any, table_name: str, keys: Keys
) -> None:
    state = StreamState(redis, table_name=table_name)
    stuck, live = Engine(hang=True), Engine()
    dying = Hitl(state=state, resolver=CallbackResolver(stuck), retry=FAST, resume_claim_idle_ms=IDLE_MS)
    await dying.start()
    try:
        tokens = [f"t{n}" for n in range(4)]
        await new_decisions(state, tokens)
        await until(lambda: len(stuck.calls) == len(tokens), what="the first replica holding every decision")
        survivor = Hitl(state=state, resolver=CallbackResolver(live), retry=FAST, resume_claim_idle_ms=IDLE_MS)
        async with survivor:
            await asyncio.sleep(IDLE_MS / 1000 + 0.5)  # beyond the claim idle time: the heartbeat keeps them
            assert live.calls == []
            crash(dying)
            killed = time.monotonic()
            await until(lambda: len(live.calls) == len(tokens), within=IDLE_MS / 1000 + 6, what="takeover")
            assert time.monotonic() - killed < IDLE_MS / 1000 + 6
            await until(lambda: settled(redis, keys))
        assert sorted(live.tokens) == tokens
    finally:
        crash(dying)


@pytest.mark.slow
async def test_after_a_redis_outage_longer_than_the_claim_idle_time_live_replicas_keep_their_work(
    table_name: str,
) -> None:
    """Redis is down longer than `claim_idle_ms`: every entry looks abandoned when it is back. The replica
    that holds a decision renews it before the other one may claim anything, so it is resumed once."""
    server = ServerProcess(["--appendonly", "yes", "--appendfsync", "always", "--save", ""], name="outage").start()
    client = connect(server.url)
    holder_engine, other_engine = Engine(hang=True), Engine()
    holder = other = None
    try:
        state = StreamState(client, table_name=table_name)
        holder = Hitl(state=state, resolver=CallbackResolver(holder_engine), retry=FAST, resume_claim_idle_ms=2000)
        await holder.start()
        await new_decisions(state, ["held"])
        await until(lambda: holder_engine.tokens == ["held"])
        other = Hitl(state=state, resolver=CallbackResolver(other_engine), retry=FAST, resume_claim_idle_ms=2000)
        await other.start()
        await asyncio.sleep(0.3)

        def outage() -> None:
            with contextlib.suppress(OSError):
                resp_command(server.port, "SHUTDOWN")
            assert server.proc is not None
            server.proc.wait(timeout=30)
            time.sleep(3.0)  # longer than the claim idle time
            server.restart()

        await asyncio.to_thread(outage)
        await asyncio.sleep(4.0)  # two claim idle times with Redis back: a takeover would have happened
        assert other_engine.calls == []
    finally:
        for hitl in (other, holder):
            if hitl is not None:
                crash(hitl)
        await client.aclose()
        server.stop()


def test_takeover_is_quick_by_default() -> None:
    state = StreamState(object(), table_name="p")
    queue = StreamResumeQueue.for_state(state)
    assert queue.claim_idle_ms <= 10_000 and queue.claim_every_ms <= 3_000


async def test_consumers_are_removed_from_the_group(redis: Any, table_name: str, keys: Keys) -> None:
    state = StreamState(redis, table_name=table_name)
    await redis.xgroup_create(keys.events, keys.resume_group, id="0", mkstream=True)
    await redis.xgroup_createconsumer(keys.events, keys.resume_group, "dead-and-empty")
    await new_decisions(state, ["held"])
    await redis.xreadgroup(keys.resume_group, "dead-with-work", {keys.events: ">"}, count=1)
    engine = Engine(hang=True)  # nothing gets finished: "dead-with-work" keeps its entry
    async with hitl_on(state, engine, consumer="reaper", claim_idle_ms=60_000, reap_idle_ms=200):
        await asyncio.sleep(0.3)

        async def names() -> set[str]:
            return {c["name"].decode() for c in await redis.xinfo_consumers(keys.events, keys.resume_group)}

        await until(lambda: _lacks(names, "dead-and-empty"), what="the empty dead consumer removed")
        assert "dead-with-work" in await names()
    # A clean stop with nothing left leaves no consumer behind.
    quiet = hitl_on(state, Engine(), consumer="quiet", claim_idle_ms=60_000)
    async with quiet:
        await asyncio.sleep(0.1)
    assert "quiet" not in {c["name"].decode() for c in await redis.xinfo_consumers(keys.events, keys.resume_group)}


async def _lacks(names: Callable[[], Any], name: str) -> bool:
    return name not in await names()


async def test_every_delivery_of_one_decision_carries_the_same_idempotency_key(
    redis_proxy: ReplyDropProxy, redis: Any, table_name: str, keys: Keys
) -> None:
    """The first replica's engine answers but the record of it never lands before the replica dies: the
    next replica resumes again (a repeat that cannot be ruled out), with the same key."""
    client = Redis.from_url(redis_proxy.url)
    state = StreamState(client, table_name=table_name)
    try:
        ids = await new_decisions(state, ["tok"])
        redis_proxy.fail_next(lambda args: any(b"resume.succeeded" in a for a in args), times=10**6)
        first, second = Engine(), Engine()
        dying = hitl_on(state, first, consumer="dying", claim_idle_ms=500)
        await dying.start()
        await until(lambda: bool(first.calls) and len(redis_proxy.failed) >= 2)
        crash(dying)
        redis_proxy.fail_next(b"NONE", times=0)
        async with hitl_on(state, second, consumer="next", claim_idle_ms=500):
            await until(lambda: bool(second.calls), within=5, what="the second delivery")
            await until(lambda: succeeded(state, ids["tok"]))
        entry = await decision_entry(redis, keys, ids["tok"])
        assert first.calls == second.calls == [("tok", f"{ids['tok']}:{entry}")]
    finally:
        await client.aclose()


async def test_resolvers_without_the_keyword_keep_working(redis: Any, table_name: str, keys: Keys) -> None:
    state = StreamState(redis, table_name=table_name)
    calls: list[str] = []

    async def old_style(token: str, result: HumanResult) -> None:
        calls.append(token)

    class OldResolver:
        async def resolve(self, token: str, result: HumanResult) -> None:
            calls.append("class:" + token)

    await new_decisions(state, ["a"])
    async with hitl_on(state, old_style, consumer="fn"):
        await until(lambda: calls == ["a"])
        await until(lambda: settled(redis, keys))
    await new_decisions(state, ["b"])
    queue = StreamResumeQueue(state.redis, state.keys, state, consumer="cls", block_ms=50)
    async with Hitl(state=state, resolver=OldResolver(), retry=FAST, resume_queue=queue):
        await until(lambda: calls == ["a", "class:b"])


async def test_in_memory_the_key_is_the_request_id() -> None:
    from hitl_streams import InMemoryState

    engine = Engine()
    hitl = Hitl(state=InMemoryState(), resolver=CallbackResolver(engine), retry=FAST)
    async with hitl:
        request_id = str(uuid.uuid4())
        await hitl.state.create(
            NewHumanRequest(id=request_id, token="tok", channel="inbox", message="m", actions=[Action(id="approve")])
        )
        await hitl.inbox.resolve(request_id, action_id="approve")
        await until(lambda: bool(engine.calls))
    assert engine.calls == [("tok", request_id)]
