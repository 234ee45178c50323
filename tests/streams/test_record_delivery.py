"""`StreamState.record_delivery`: a delivery's external id and its audit event in one script call. The
same two events as `set_external_id` then `record`, in that order; the lease given back in that call only
if still ours; a concurrent resolution kept; a retried call written once; a rebuild byte-identical."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from hitl_streams import StreamState, ValidationError
from hitl_streams.history import events as ev
from hitl_streams.testing.contract import new_request, resolved_result
from hitl_streams.testing.proxy import ReplyDropProxy
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis


@pytest.fixture
async def state(redis: Redis, table_name: str) -> StreamState:
    s = StreamState(redis, table_name=table_name)
    await s.ensure_schema()
    await s.create(new_request("r1"))
    return s


def delivered(external_id: str = "ext-1") -> ev.RequestDelivered:
    return ev.RequestDelivered(at="2026-11-27T10:00:00.000Z", id="r1", channel="chat", external_id=external_id)


async def trail(state: StreamState, request_id: str = "r1") -> list[ev.Event]:
    return [r.event for r in await state.audit(request_id)]


async def test_one_call_appends_both_events_in_order_as_two_calls_do(redis: Redis, state: StreamState) -> None:
    await state.record_delivery("r1", "ext-1", "chat", delivered())
    events = await trail(state)
    assert [type(e) for e in events] == [ev.RequestCreated, ev.RequestExternalIdSet, ev.RequestDelivered]
    assert events[1] == ev.RequestExternalIdSet(at=delivered().at, id="r1", key="chat", external_id="ext-1")
    assert events[2] == delivered()
    record = await state.get("r1")
    assert record is not None and record.external_ids == {"chat": "ext-1"}
    assert await state.find_by_external_id("ext-1") == record
    live = await snapshot(redis, state.keys)
    assert (await state.verify()).clean
    await state.rebuild()
    assert await snapshot(redis, state.keys) == live  # replay: byte for byte


async def test_the_projection_is_what_two_separate_calls_make(redis: Redis, table_name: str) -> None:
    """The same history written both ways projects to the same keys (audit bucket fields included)."""
    one = StreamState(redis, table_name=f"{table_name}_one")
    two = StreamState(redis, table_name=f"{table_name}_two")
    for s in (one, two):
        await s.create(new_request("r1"))
    await one.record_delivery("r1", "ext-1", "chat", delivered())
    await two.set_external_id("r1", "ext-1", "chat")
    await two.record(delivered())
    shapes = []
    for s in (one, two):
        keys = await snapshot(redis, s.keys)
        shapes.append({k.removeprefix(s.keys.prefix): v for k, v in keys.items()})
    # Stream ids (and so audit positions) and times differ between the two prefixes; the key set and the
    # records, but for their creation time, do not.
    assert shapes[0].keys() == shapes[1].keys()
    first, second = await one.get("r1"), await two.get("r1")
    assert first is not None and second is not None
    assert msgspec.structs.replace(first, created_at="") == msgspec.structs.replace(second, created_at="")
    assert [type(e) for e in await trail(one)] == [type(e) for e in await trail(two)]


async def test_the_lease_goes_back_in_the_same_call_only_if_still_ours(redis: Redis, state: StreamState) -> None:
    token = await state.acquire_lease("deliver:r1", 30_000)
    assert token is not None
    await state.record_delivery("r1", "ext-1", "chat", delivered(), ("deliver:r1", token))
    assert await redis.exists(state.keys.lease("deliver:r1")) == 0
    await state.create(new_request("r2"))
    other = await state.acquire_lease("deliver:r2", 30_000)
    later = ev.RequestDelivered(at="2026-11-27T10:00:01.000Z", id="r2", channel="chat", external_id="ext-2")
    await state.record_delivery("r2", "ext-2", "chat", later, ("deliver:r2", "not-the-holder"))
    assert await redis.get(state.keys.lease("deliver:r2")) == (other or "").encode()


async def test_a_concurrent_resolution_is_kept(redis: Redis, table_name: str, state: StreamState) -> None:
    """The writer's cached bytes are stale (another replica resolved): the compare-and-set re-reads."""
    await state.get("r1")  # cached as pending
    replica = StreamState(redis, table_name=table_name)
    await replica.resolve("r1", resolved_result("r1"))
    await state.record_delivery("r1", "ext-1", "chat", delivered())
    record = await state.get("r1")
    assert record is not None and record.status == "resolved" and record.external_ids == {"chat": "ext-1"}
    assert [type(e) for e in await trail(state)][-2:] == [ev.RequestExternalIdSet, ev.RequestDelivered]
    assert (await state.verify()).clean


async def test_only_delivery_events_ride_along(state: StreamState) -> None:
    reminded = ev.RequestReminded(at="2026-11-27T10:00:00.000Z", id="r1", channel="chat", message="m")
    with pytest.raises(ValidationError):
        await state.record_delivery("r1", "ext-1", "chat", reminded)  # type: ignore[arg-type]


@pytest.fixture
async def proxied(redis_proxy: ReplyDropProxy, table_name: str) -> AsyncIterator[StreamState]:
    client = redis_proxy.client()
    try:
        s = StreamState(client, table_name=table_name)
        await s.create(new_request("r1"))
        yield s
    finally:
        await client.aclose()


async def test_a_lost_reply_writes_both_events_once(
    proxied: StreamState, redis_proxy: ReplyDropProxy, redis: Redis
) -> None:
    before = await redis.xlen(proxied.keys.events)
    redis_proxy.drop_reply_once(match=lambda args: bool(args) and args[0].upper() in (b"EVALSHA", b"EVAL"))
    await proxied.record_delivery("r1", "ext-1", "chat", delivered())
    assert redis_proxy.fired.is_set()
    assert await redis.xlen(proxied.keys.events) == before + 2
    assert (await proxied.verify()).clean
