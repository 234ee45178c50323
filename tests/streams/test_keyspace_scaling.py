"""rebuild and verify cost O(this prefix), not O(all keys): a replay lists the keys it touched, and only a
sweep (asked for, or chosen when the database is not much larger than the prefix) SCANs the keyspace."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from event_history import populate, request
from redis.asyncio import Redis

from hitl_streams import Resolved, StreamState
from hitl_streams.streams import replay as replay_module
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis


async def _scans(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_scan", {}).get("calls", 0))


@pytest.fixture
async def crowd(redis: Redis) -> AsyncIterator[int]:
    """5,000 unrelated keys in the same database, removed afterwards."""
    tag = uuid.uuid4().hex
    names = [f"unrelated:{tag}:{n}" for n in range(5000)]
    for start in range(0, len(names), 1000):
        await redis.mset({name: "x" for name in names[start : start + 1000]})
    yield len(names)
    for start in range(0, len(names), 1000):
        await redis.delete(*names[start : start + 1000])


@pytest.fixture
def no_default_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default's threshold made tiny, so the crowd makes the database "much larger than the prefix"."""
    monkeypatch.setattr(replay_module, "SWEEP_SLACK", 0)
    monkeypatch.setattr(replay_module, "SWEEP_RATIO", 1)


async def test_rebuild_and_verify_send_no_scan_without_a_sweep(redis: Redis, table_name: str, crowd: int) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    live = await snapshot(redis, state.keys)
    before = await _scans(redis)
    report = await state.verify(sweep=False)
    await state.rebuild(sweep=False)
    again = await state.verify(sweep=False)
    assert await _scans(redis) == before  # nothing walked the 5,000 unrelated keys
    assert report.clean and again.clean and not report.swept
    assert await snapshot(redis, state.keys) == live


async def test_the_default_skips_the_sweep_when_the_database_is_much_larger(
    redis: Redis, table_name: str, crowd: int, no_default_sweep: None
) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    before = await _scans(redis)
    report = await state.verify()
    await state.rebuild()
    assert await _scans(redis) == before
    assert report.clean and not report.swept


async def test_drift_in_keys_the_history_names_is_found_without_a_sweep(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    keys = state.keys
    records = [r async for r in redis.scan_iter(match=keys.prefix + ":req:*")]
    first = records[0].decode() if isinstance(records[0], bytes) else records[0]
    await redis.set(first, b'{"changed":true}')
    await redis.zrem(keys.idx_all, first.rsplit(":", 1)[1])
    report = await state.verify(sweep=False)
    assert not report.clean
    assert first in report.differing and keys.idx_all in report.differing
    await state.rebuild(sweep=False)
    assert (await state.verify(sweep=True)).clean


async def test_a_key_no_event_names_is_found_by_a_sweep_only(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    bogus = f"{state.keys.prefix}:idx:ext:bogus"
    await redis.set(bogus, "r1")
    unswept = await state.verify(sweep=False)
    assert unswept.clean and not unswept.swept  # documented: not looked for
    swept = await state.verify(sweep=True)
    assert swept.extra == [bogus] and swept.swept
    await state.rebuild(sweep=True)
    assert not await redis.exists(bogus)
    assert (await state.verify(sweep=True)).clean


async def test_the_default_sweeps_a_database_not_much_larger_than_the_prefix(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    bogus = f"{state.keys.prefix}:idx:ext:bogus"
    await redis.set(bogus, "r1")
    report = await state.verify()
    assert report.swept and report.extra == [bogus]


async def test_the_scratch_is_gone_after_verify_and_rebuild(redis: Redis, table_name: str, crowd: int) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    await state.verify(sweep=False)
    await state.rebuild(sweep=False)
    assert [k async for k in redis.scan_iter(match=state.keys.prefix + ":scratch:*")] == []


async def test_a_new_prefix_starts_without_scanning_the_keyspace(redis: Redis, table_name: str, crowd: int) -> None:
    before = await _scans(redis)
    await StreamState(redis, table_name=table_name).ensure_schema()
    assert await _scans(redis) == before


@pytest.mark.parametrize("batch_size", [1, 3, replay_module.BATCH_SIZE])
async def test_an_index_the_replay_empties_is_deleted_live_without_a_sweep(
    redis: Redis, table_name: str, batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the RENAMEs, only keys the replay removed from or gave a deadline (`meta:cleared`) are checked
    for absence: a pending index that its only request left is one, and its live twin must go, also when
    the removal and the addition fall in different batches."""
    defaults = replay_module.replay_into.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "batch_size", batch_size)
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    await state.create(request("z1", namespace="solo"))
    await state.resolve("z1", Resolved("z1", "approve", "", {}))
    emptied = state.keys.idx_ns_status("solo", "pending")
    await redis.zadd(emptied, {"ghost": 1})  # drift in a key the history names
    report = await state.verify(sweep=False)
    assert report.extra == [emptied]
    await state.rebuild(sweep=False)
    assert not await redis.exists(emptied)
    assert await redis.exists(state.keys.idx_ns_status("solo", "resolved"))
    assert (await state.verify(sweep=True)).clean
