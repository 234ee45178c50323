"""A batch's shared context is stored once in history, not once per item (issue #12, item 5).

The projection still writes every item's record with the context (the TypeScript layout reads it
there), live and replayed byte for byte; histories written before (schema version 2: each item's
`request.created` carrying the whole context) still replay to the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hitl_streams import NewBatch, NewHumanRequest, StreamState, actions
from hitl_streams.history import events as ev
from hitl_streams.server import Hitl
from hitl_streams.testing.recording import RecordingAdapter
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis

API = "/.well-known/hitl/v1"
MARKER = "shared-context-marker"


async def _events(redis: Redis, state: StreamState) -> list[tuple[str, bytes]]:
    rows = await redis.xrange(state.keys.events)
    return [
        (_text(position), _bytes(fields[b"event"] if b"event" in fields else fields["event"]))
        for position, fields in rows
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def test_a_400_item_batch_stores_its_context_once_in_history(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    hitl = Hitl(state=state, adapters=[RecordingAdapter("chat")], secret="")
    context = {"marker": MARKER, "blob": "c" * 20_000}
    context_bytes = len(json.dumps(context))
    items = [{"token": f"t{i}", "message": f"item {i}"} for i in range(400)]
    transport = httpx.ASGITransport(app=hitl.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        created = await client.post(
            f"{API}/batches", json={"items": items, "actions": [{"id": "approve"}], "context": context}
        )
    assert created.status_code == 201, created.text
    ids = created.json()["ids"]

    history = await _events(redis, state)
    assert sum(event.count(MARKER.encode()) for _, event in history) == 1  # in batch.created only
    total = sum(len(event) for _, event in history)
    assert total < context_bytes + 400 * 1_000, total  # the build stored > 400 x the context
    item_events = [json.loads(event) for _, event in history if b'"request.created"' in event]
    assert len(item_events) == 400
    assert all(e["batchContext"] is True and "context" not in e["request"] and e["v"] >= 3 for e in item_events)
    stream_bytes = await redis.memory_usage(state.keys.events)
    # Entries of every event (created, delivered, external id set: ~1,200) with Redis's own overhead,
    # against 400 x 20 KB = 8 MB when each item repeated the context.
    assert stream_bytes is not None and stream_bytes < 5 * context_bytes + 400 * 2_000, stream_bytes

    # Every item's record carries the context, as the TypeScript layout has it.
    for request_id in (ids[0], ids[-1]):
        record = await state.get(request_id)
        assert record is not None and record.context == context
        raw = await redis.get(state.keys.req(request_id))
        assert raw is not None and json.loads(raw)["context"] == context
    # ... and a replay writes exactly the same bytes.
    assert (await state.verify()).clean
    live = await snapshot(redis, state.keys)
    await state.rebuild()
    assert await snapshot(redis, state.keys) == live
    # The audit trail still shows the item's whole record.
    trail = await state.audit(ids[3])
    assert isinstance(trail[0].event, ev.RequestCreated) and trail[0].event.uses_batch_context


def _request(rid: str, batch: str, index: int, context: dict[str, Any] | None) -> NewHumanRequest:
    return NewHumanRequest(
        id=rid,
        token=f"tok-{rid}",
        channel="chat",
        message=f"m {rid}",
        actions=actions().approve().build(),
        context=context,
        batch_id=batch,
        batch_index=index,
    )


async def test_only_the_batchs_own_context_is_left_out(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    shared = {"k": [1, 2, {"x": None}]}
    await state.create_batch(NewBatch(id="b1", channel="chat", actions=actions().approve().build(), context=shared))
    await state.create(_request("same", "b1", 0, shared))
    await state.create(_request("other", "b1", 1, {"k": "different"}))
    await state.create(_request("none", "b1", 2, None))
    await state.create(_request("orphan", "missing-batch", 0, shared))  # no batch record to name
    by_id = {
        e["request"]["id"]: e
        for e in (json.loads(event) for _, event in await _events(redis, state))
        if e["type"] == "request.created"
    }
    assert by_id["same"].get("batchContext") is True and "context" not in by_id["same"]["request"]
    for rid, context in [("other", {"k": "different"}), ("orphan", shared)]:
        assert "batchContext" not in by_id[rid] and by_id[rid]["request"]["context"] == context
    assert "batchContext" not in by_id["none"] and "context" not in by_id["none"]["request"]
    for rid, context in [("same", shared), ("other", {"k": "different"}), ("none", None), ("orphan", shared)]:
        record = await state.get(rid)
        assert record is not None and record.context == context
    assert (await state.verify()).clean


async def test_an_old_format_history_replays_to_the_same_bytes(redis: Redis, table_name: str) -> None:
    """Schema version 2 wrote every batch item's context into its `request.created`: rewrite a new
    history in that format (same positions), rebuild, and compare the projection byte for byte."""
    state = StreamState(redis, table_name=table_name)
    shared = {"ticket": 42, "nested": {"list": [1, "two", None]}}
    await state.create_batch(NewBatch(id="b1", channel="chat", actions=actions().approve().build(), context=shared))
    for index in range(3):
        await state.create(_request(f"i{index}", "b1", index, shared))
    await state.set_batch_external_id("b1", "ext-b1")
    live = await snapshot(redis, state.keys)

    history = await _events(redis, state)
    rewritten = 0
    await redis.delete(state.keys.events)
    for position, event in history:
        data = json.loads(event)
        if data.get("batchContext") is True:
            data.pop("batchContext")
            data["request"]["context"] = shared
            data["v"] = 2
            rewritten += 1
        old = json.dumps(data, separators=(",", ":"))
        assert isinstance(ev.decode_event(old), type(ev.decode_event(event)))
        await redis.xadd(state.keys.events, {"event": old}, id=position)
    assert rewritten == 3

    assert (await state.verify()).clean
    await state.rebuild()
    assert await snapshot(redis, state.keys) == live
    record = await state.get("i1")
    assert record is not None and record.context == shared
