"""Property: after any sequence of State operations, the live projection equals a rebuild from the
stream, key by key and byte by byte, and StreamState answers like InMemoryState."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from hitl_streams import (
    HitlError,
    InMemoryState,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    Resolved,
    Reviewer,
    StreamState,
    TimedOut,
    TimelineEntry,
    actions,
    field,
)
from hitl_streams.history.keys import Keys
from hitl_streams.streams.replay import replay_into
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis

ACTIONS = actions().approve(fields={"n": field.text(label="N", default="d")}).deny().build()
ids = st.sampled_from(["a", "b", "c", "d"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), ids, st.sampled_from(["global", "team"]), st.sampled_from([None, "B"])),
        st.tuples(st.just("ext"), ids, st.sampled_from(["e1", "e2", "e3"]), st.sampled_from([None, "oncall"])),
        st.tuples(st.just("resolve"), ids, st.sampled_from(["approve", "deny", "timeout"])),
        st.tuples(st.just("batch"), st.just("B")),
        st.tuples(st.just("batch_ext"), st.just("B"), st.sampled_from(["x1", "x2"])),
        st.tuples(st.just("timeline"), ids, st.integers(0, 3)),
        st.tuples(st.just("notify"), st.sampled_from(["n1", "n2"]), ids),
        st.tuples(st.just("notify_ext"), st.sampled_from(["n1", "n2"]), st.sampled_from(["y1", "y2"])),
    ),
    max_size=25,
)


async def run(state: Any, op: tuple[Any, ...], counter: list[int]) -> str:
    kind = op[0]
    counter[0] += 1
    try:
        if kind == "create":
            _, rid, ns, batch = op
            index = None if batch is None else ord(rid) - ord("a")
            await state.create(
                NewHumanRequest(
                    id=rid, token=f"t-{rid}", channel="c", namespace=ns, message="m", actions=ACTIONS,
                    context={"list": [], "n": 2**60}, batch_id=batch, batch_index=index,
                )
            )  # fmt: skip
        elif kind == "ext":
            await state.set_external_id(op[1], op[2], op[3])
        elif kind == "resolve":
            result = (
                TimedOut(op[1], "")
                if op[2] == "timeout"
                else Resolved(op[1], op[2], "", {"n": "d"} if op[2] == "approve" else {}, by=Reviewer(id="u"))
            )
            await state.resolve(op[1], result)
        elif kind == "batch":
            await state.create_batch(NewBatch(id=op[1], channel="c", message="b", actions=ACTIONS))
        elif kind == "batch_ext":
            await state.set_batch_external_id(op[1], op[2])
        elif kind == "timeline":
            await state.append_timeline(
                TimelineEntry(
                    id=f"e{counter[0]}", thread_id=op[1], message="t", created_at=f"2026-01-01T00:00:0{op[2]}.000Z"
                )
            )
        elif kind == "notify":
            await state.create_notify_delivery(NewNotifyDelivery(id=op[1], channel="c", message="n", group_id=op[2]))
        elif kind == "notify_ext":
            await state.set_notify_delivery_external_id(op[1], op[2])
    except HitlError as exc:
        return type(exc).__name__
    return "ok"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, batch_size=st.integers(1, 4))
async def test_projection_equals_rebuild_and_matches_memory(
    redis: Redis, ops: list[tuple[Any, ...]], batch_size: int
) -> None:
    table = f"p_{uuid.uuid4().hex[:12]}.h"
    stream, memory = StreamState(redis, table_name=table), InMemoryState()
    try:
        counters = [0], [0]
        for op in ops:
            assert await run(stream, op, counters[0]) == await run(memory, op, counters[1]), op
        live = await snapshot(redis, stream.keys)
        report = await stream.verify()
        assert report.clean, report.to_dict()
        await stream.rebuild()
        assert await snapshot(redis, stream.keys) == live
        # In batches of a few events: subjects carried from the batch before, or read while it is written.
        scratch = stream.keys.scratch("small")
        await replay_into(redis, stream.keys, scratch, stream.projector, batch_size=batch_size)
        replayed = await snapshot(redis, scratch)
        assert {name.replace(scratch.prefix, stream.keys.prefix, 1): v for name, v in replayed.items()} == live
        for rid in "abcd":
            mine, theirs = await stream.get(rid), await memory.get(rid)
            assert (mine is None) == (theirs is None)
            if mine is not None and theirs is not None:
                assert (mine.status, mine.external_id, mine.external_ids, mine.result, mine.batch_id) == (
                    theirs.status, theirs.external_id, theirs.external_ids, theirs.result, theirs.batch_id,
                )  # fmt: skip
        for status in (None, "pending", "resolved"):
            assert await stream.count(status=status) == await memory.count(status=status)  # type: ignore[arg-type]
        assert [r.id for r in await stream.list_by_batch("B")] == [r.id for r in await memory.list_by_batch("B")]
    finally:
        names = [k async for k in redis.scan_iter(match=Keys.for_table(table).prefix + ":*")]
        if names:
            await redis.delete(*names)
