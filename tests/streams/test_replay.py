"""replay.verify compares long ZSETs and LISTs slice by slice (flat memory) and still finds drift in them; a
replay pauses the garbage collector only while it computes."""

from __future__ import annotations

import gc

import msgspec
import pytest
from redis.asyncio import Redis

from hitl_streams import NewHumanRequest, StreamState, TimelineEntry, actions
from hitl_streams.streams import replay as replay_module

pytestmark = pytest.mark.redis


@pytest.fixture
async def state(redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch) -> StreamState:
    monkeypatch.setattr(replay_module, "_SLICE", 3)  # every index below counts as long
    s = StreamState(redis, table_name=table_name)
    for i in range(10):
        await s.create(
            NewHumanRequest(
                id=f"r{i}", token=f"t{i}", channel="inbox", message="m", actions=actions().approve().build()
            )
        )
    return s


async def test_long_indexes_compare_clean(state: StreamState) -> None:
    report = await state.verify()
    assert report.clean, report.to_dict()
    assert report.keys_checked > 10


async def test_a_changed_score_deep_in_a_long_index_is_drift(state: StreamState, redis: Redis) -> None:
    await redis.zadd(state.keys.idx_all, {"r0": 1.0})
    report = await state.verify()
    assert report.differing == [state.keys.idx_all]
    assert report.missing == [] and report.extra == []


async def test_a_long_list_with_one_more_item_is_drift(state: StreamState, redis: Redis) -> None:
    for i in range(5):  # a thread's audit LIST, longer than a slice
        await state.append_timeline(
            TimelineEntry(id=f"e{i}", thread_id="t9", message="m", created_at="2026-11-25T17:03:04.512Z")
        )
    assert (await state.verify()).clean
    await redis.rpush(state.keys.audit("t9"), "0-1")
    report = await state.verify()
    assert report.differing == [state.keys.audit("t9")]


async def test_same_slices_walks_past_the_first_slice(redis: Redis, table_name: str) -> None:
    a, b = f"{table_name}:a", f"{table_name}:b"
    await redis.rpush(a, *[str(i) for i in range(11)])
    await redis.rpush(b, *[str(i) for i in range(10)], "x")
    assert not await replay_module.same_slices(redis, "list", a, b, size=4)
    await redis.delete(b)
    await redis.rpush(b, *[str(i) for i in range(11)])
    assert await replay_module.same_slices(redis, "list", a, b, size=4)


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_replay_leaves_the_garbage_collector_as_it_found_it(state: StreamState, enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        await state.rebuild()
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


async def test_a_replay_that_fails_turns_the_garbage_collector_back_on(state: StreamState, redis: Redis) -> None:
    await redis.xadd(state.keys.events, {"event": b'{"type":"no.such.event","v":1,"at":"x"}'})
    with pytest.raises(msgspec.ValidationError):
        await state.verify()
    assert gc.isenabled()


async def test_an_undecodable_event_in_a_later_batch_stops_the_replay_with_its_error(
    state: StreamState, redis: Redis
) -> None:
    await redis.xadd(state.keys.events, {"event": b'{"type":"no.such.event","v":2,"at":"x"}'})
    scratch = state.keys.scratch("bad")
    with pytest.raises(msgspec.ValidationError):
        await replay_module.replay_into(redis, state.keys, scratch, state.projector, batch_size=3)
    assert gc.isenabled()
    assert await redis.exists(scratch.req("r0")) == 1  # the batches before it were written
