"""A rebuild while servers keep writing loses no write (README, "rebuild"): the replay catches up with
the events appended meanwhile, and writes pause only while the replayed projection is swapped in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from event_history import populate, request
from redis.asyncio import Redis

from hitl_streams import Resolved, StreamState
from hitl_streams.history.keys import Keys
from hitl_streams.streams import replay as replay_module

pytestmark = pytest.mark.redis


async def test_writes_during_a_rebuild_are_kept(redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state, extra=300)
    writer = StreamState(redis, table_name=table_name)
    written: list[str] = []
    stop = asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            rid = f"w{i}"
            await writer.create(request(rid))
            if i % 2:
                await writer.resolve(rid, Resolved(rid, "deny", "", {}))
            await writer.set_external_id("r3", f"ext-{i}")
            written.append(rid)
            i += 1

    during_swap: list[int] = []
    real_swap, real_replay = replay_module.swap_in, replay_module.replay_into

    async def slow_replay(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.05)  # let the writers append while the replay runs
        return await real_replay(*args, **kwargs)

    async def slow_swap(redis: Any, keys: Keys, scratch: Keys, **options: Any) -> int:
        before = await redis.xlen(keys.events)
        await asyncio.sleep(0.3)  # writers keep trying: they must wait, not land and be reverted
        during_swap.append(await redis.xlen(keys.events) - before)
        return await real_swap(redis, keys, scratch, **options)

    monkeypatch.setattr(replay_module, "replay_into", slow_replay)
    monkeypatch.setattr(replay_module, "swap_in", slow_swap)
    task = asyncio.create_task(write())
    await asyncio.sleep(0.05)
    before_rebuild = len(written)
    stats = await state.rebuild()
    during_rebuild = len(written) - before_rebuild
    await asyncio.sleep(0.05)
    stop.set()
    await task
    monkeypatch.undo()

    assert during_rebuild > 0 and during_swap == [0]
    assert stats.events > 0 and stats.last_position is not None
    assert (await state.verify()).clean
    for i, rid in enumerate(written):
        record = await state.get(rid)
        assert record is not None and record.status == ("resolved" if i % 2 else "pending")
    r3 = await state.get("r3")
    assert r3 is not None and r3.external_ids == {"slack": f"ext-{len(written) - 1}"}
    assert await state.count() == 5 + 300 + len(written)
    assert not await redis.exists(state.keys.meta_pause)


async def test_a_write_waits_for_the_pause_to_end(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await state.create(request("a"))
    async with replay_module.write_pause(redis, state.keys):
        pending = asyncio.create_task(state.resolve("a", Resolved("a", "approve", "", {})))
        await asyncio.sleep(0.2)
        assert not pending.done()
        assert (await state.get("a")).status == "pending"  # type: ignore[union-attr]
    await asyncio.wait_for(pending, 5)
    assert (await state.get("a")).status == "resolved"  # type: ignore[union-attr]
    assert await redis.ttl(state.keys.meta_pause) == -2


async def test_an_interrupted_rebuild_leaves_nothing_behind_and_a_rerun_finishes(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state, extra=50)
    from hitl_streams.testing.snapshot import snapshot

    live = await snapshot(redis, state.keys)

    async def half_a_swap(redis: Any, keys: Keys, scratch: Keys, **options: Any) -> int:
        names = sorted([k async for k in replay_module.projection_keys(redis, scratch)])
        for name in names[: len(names) // 2]:
            await redis.rename(name, keys.prefix + name[len(scratch.prefix) :])
        raise asyncio.CancelledError  # Ctrl-C in the middle of the swap

    monkeypatch.setattr(replay_module, "swap_in", half_a_swap)
    with pytest.raises(asyncio.CancelledError):
        await state.rebuild()
    monkeypatch.undo()

    leftovers = [k async for k in redis.scan_iter(match=state.keys.prefix + ":scratch:*")]
    assert leftovers == []
    assert not await redis.exists(state.keys.meta_pause, state.keys.meta_lock)
    assert (await state.verify()).clean  # half old, half new: both are the projection of the same history
    await state.rebuild()
    assert await snapshot(redis, state.keys) == live
