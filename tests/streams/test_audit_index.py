"""The audit index (steps 0006 and 0007): requests' positions in bucket HASH fields, everything else in a
LIST per subject; `audit()` merges both; replays append to fields across batches exactly as live writes."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from hitl_streams import NewBatch, NewHumanRequest, Resolved, StreamState, TimelineEntry, actions
from hitl_streams.history.keys import Keys
from hitl_streams.streams.replay import replay_into
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis

ACTIONS = actions().approve().build()
AT = "2026-11-25T17:03:04.512Z"


def _request(request_id: str, batch_id: str | None = None) -> NewHumanRequest:
    return NewHumanRequest(
        id=request_id,
        token="t-" + request_id,
        channel="inbox",
        message="m",
        actions=ACTIONS,
        batch_id=batch_id,
        batch_index=None if batch_id is None else 0,
    )


def _resolved(request_id: str) -> Resolved:
    return Resolved(id=request_id, action_id="approve", external_ref="inbox:" + request_id, feedbacks={})


def test_the_bucket_is_crc32_of_the_id_modulo_1024_in_hex() -> None:
    keys = Keys("p:t")
    assert keys.audit_bucket("r1") == "p:t:audits:1b1"
    assert keys.audit_bucket("a") == "p:t:audits:243"
    assert Keys.for_table("p.t", cluster=True).audit_bucket("r1") == "{p:t}:audits:1b1"


async def test_a_requests_positions_live_in_its_bucket_field_not_a_list(state: StreamState, redis: Redis) -> None:
    await state.create(_request("r1"))
    await state.set_external_id("r1", "ext-1")
    await state.resolve("r1", _resolved("r1"))
    trail = await state.audit("r1")
    assert [type(item.event).__name__ for item in trail] == [
        "RequestCreated",
        "RequestExternalIdSet",
        "RequestResolved",
    ]
    field = await redis.hget(state.keys.audit_bucket("r1"), "r1")
    assert field is not None and field.decode() == " ".join(item.position for item in trail)
    assert await redis.exists(state.keys.audit("r1")) == 0
    assert await redis.type(state.keys.audit_bucket("r1")) == b"hash"


async def test_a_thread_and_a_batch_keep_a_list_and_merge_with_a_request_of_the_same_id(
    state: StreamState, redis: Redis
) -> None:
    await state.create(_request("same"))
    await state.append_timeline(TimelineEntry(id="e1", thread_id="same", message="note", created_at=AT))
    await state.resolve("same", _resolved("same"))
    await state.create_batch(NewBatch(id="b1", channel="inbox"))
    await state.create(_request("b1:0", batch_id="b1"))
    trail = [type(item.event).__name__ for item in await state.audit("same")]
    assert trail == ["RequestCreated", "TimelineAppended", "RequestResolved"]
    assert await redis.llen(state.keys.audit("same")) == 1  # the thread's event only
    assert await redis.llen(state.keys.audit("b1")) == 2  # batch.created, and its item's request.created
    assert [type(item.event).__name__ for item in await state.audit("b1")] == ["BatchCreated", "RequestCreated"]


async def test_a_batch_whose_id_is_its_items_id_keeps_the_items_event(state: StreamState, redis: Redis) -> None:
    await state.create_batch(NewBatch(id="x", channel="inbox"))
    await state.create(_request("x", batch_id="x"))
    assert await redis.llen(state.keys.audit("x")) == 2
    assert [type(item.event).__name__ for item in await state.audit("x")] == ["BatchCreated", "RequestCreated"]
    assert (await state.verify()).clean


@pytest.mark.parametrize("batch_size", [1, 2, 3])
async def test_a_replay_in_small_batches_appends_to_fields_as_live_writes_did(
    state: StreamState, redis: Redis, batch_size: int
) -> None:
    for i in range(4):
        await state.create(_request(f"r{i}"))
    for i in range(4):
        await state.set_external_id(f"r{i}", f"ext-{i}")
        await state.resolve(f"r{i}", _resolved(f"r{i}"))
    scratch = state.keys.scratch("small")
    await replay_into(redis, state.keys, scratch, state.projector, batch_size=batch_size)
    live = await snapshot(redis, state.keys)
    replayed = await snapshot(redis, scratch)
    assert {name.replace(scratch.prefix, state.keys.prefix): value for name, value in replayed.items()} == live
    bucket = state.keys.audit_bucket("r3")
    assert live[bucket][0] == "hash" and len(dict(live[bucket][1])["r3"].split(" ")) == 3


@pytest.fixture
def state(redis: Redis, table_name: str) -> StreamState:
    return StreamState(redis, table_name=table_name)
