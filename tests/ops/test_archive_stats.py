"""Export/import of history as JSON lines, and prefix statistics, against a real Redis."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from event_history import populate
from redis.asyncio import Redis

from hitl_streams import SchemaError, StreamState, ValidationError
from hitl_streams.history.keys import Keys
from hitl_streams.ops.archive import export_history, import_history
from hitl_streams.ops.stats import collect_stats
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis


def rebased(snap: dict[str, Any], keys: Keys) -> dict[str, Any]:
    return {name[len(keys.prefix) :]: value for name, value in snap.items()}


async def exported(redis: Redis, keys: Keys, **bounds: Any) -> list[bytes]:
    return [line async for line in export_history(redis, keys, batch_size=7, **bounds)]


async def test_export_reimport_and_rebuild_give_the_same_projection(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    lines = await exported(redis, state.keys)
    assert len(lines) == await redis.xlen(state.keys.events) > 7  # more than one batch
    first = json.loads(lines[0])
    assert first["event"]["type"] == "request.created" and first["position"].count("-") == 1

    copy = StreamState(redis, table_name=f"t_{uuid.uuid4().hex[:16]}.copy")
    try:
        stats = await import_history(redis, copy.keys, lines, copy.projector)
        assert stats.events == len(lines)
        assert await exported(redis, copy.keys) == lines  # same positions, same bytes
        await copy.rebuild()
        assert rebased(await snapshot(redis, copy.keys), copy.keys) == rebased(
            await snapshot(redis, state.keys), state.keys
        )
        assert await copy.get("r1") == await state.get("r1")
        assert (await copy.verify()).clean
        with pytest.raises(SchemaError, match="already has history"):
            await import_history(redis, copy.keys, lines, copy.projector)
    finally:
        await redis.delete(*[k async for k in redis.scan_iter(match=copy.keys.prefix + ":*")])


async def test_export_bounds_are_inclusive_and_validated(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    lines = await exported(redis, state.keys)
    positions = [json.loads(line)["position"] for line in lines]
    middle = await exported(redis, state.keys, since=positions[2], until=positions[5])
    assert middle == lines[2:6]
    with pytest.raises(ValidationError, match="Invalid stream position"):
        await exported(redis, state.keys, since="yesterday")


async def test_import_refuses_garbage_and_out_of_order_lines(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    lines = await exported(redis, state.keys)
    target = Keys.for_table(f"t_{uuid.uuid4().hex[:16]}.copy")
    with pytest.raises(ValidationError, match="line 2: not an exported event"):
        await import_history(redis, target, [lines[0], b'{"position":"1-0","event":{"type":"nope"}}'], state.projector)
    with pytest.raises(ValidationError, match=r"line 2: position .* is not after"):
        await import_history(redis, target, [lines[1], lines[0]], state.projector)
    assert [k async for k in redis.scan_iter(match=target.prefix + ":*")] == []  # nothing left behind
    with pytest.raises(SchemaError, match=r"not empty|already has history"):
        await import_history(redis, state.keys, lines, state.projector)


async def test_stats_counts_history_steps_and_memory(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await populate(state)
    stats = await collect_stats(redis, state.keys, state.projector)
    assert stats.requests == 5
    assert stats.by_status == {"pending": 3, "resolved": 2}
    assert stats.by_namespace == {
        "global": {"total": 3, "pending": 2, "resolved": 1},
        "ops": {"total": 2, "pending": 1, "resolved": 1},
    }
    assert stats.stream_length == await redis.xlen(state.keys.events)
    assert stats.first_event is not None and stats.last_event is not None
    assert stats.first_event[0] < stats.last_event[0] and stats.first_event[1] <= stats.last_event[1]
    assert stats.steps_applied == [s.id for s in state.projector.steps] and stats.steps_pending == []
    names = [k async for k in redis.scan_iter(match=state.keys.prefix + ":*")]
    assert stats.keys == len(names)
    usage = sum([await redis.memory_usage(k) or 0 for k in names])
    assert stats.memory_bytes == usage > 0
    assert stats.to_dict()["memoryIsApproximate"] is True
