"""Event encoding: what created and resolution events store, and histories written by earlier builds."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from hitl_streams import NewHumanRequest, Resolved, Reviewer, StreamState, TimedOut, actions
from hitl_streams.history.codec import encode
from hitl_streams.history.events import (
    RequestCreated,
    RequestResolved,
    RequestTimedOut,
    decode_event,
    encode_event,
    resolution_event,
)

AT = "2026-11-25T17:03:04.512Z"
EARLIER = "2026-11-25T17:00:00.000Z"
ACTIONS = actions().approve().build()


def _new(request_id: str = "r1") -> NewHumanRequest:
    return NewHumanRequest(id=request_id, token="t-" + request_id, channel="inbox", message="m", actions=ACTIONS)


@pytest.mark.parametrize(
    "result",
    [
        Resolved(id="r1", action_id="approve", external_ref="inbox:r1", feedbacks={}),
        TimedOut(id="r1", external_ref="inbox:r1"),
    ],
)
def test_a_resolution_is_dated_by_its_event_time_alone(result: Resolved | TimedOut) -> None:
    event = resolution_event("r1", result, AT)
    data = json.loads(encode_event(event))
    assert "resolvedAt" not in data
    assert data["at"] == AT
    decoded = decode_event(encode_event(event))
    assert isinstance(decoded, RequestResolved | RequestTimedOut)
    assert decoded.resolved_at == AT


def test_an_earlier_builds_resolved_at_is_still_read() -> None:
    raw = (
        '{"type":"request.resolved","v":1,"at":"' + AT + '","id":"r1","result":{"type":"RESOLVED","id":"r1",'
        '"actionId":"approve","externalRef":"inbox:r1","feedbacks":{}},"resolvedAt":"' + EARLIER + '"}'
    )
    event = decode_event(raw)
    assert isinstance(event, RequestResolved)
    assert event.resolved_at == EARLIER


@pytest.mark.redis
async def test_a_rebuild_keeps_the_resolved_at_of_an_earlier_builds_event(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await state.create(_new())
    legacy = (
        '{"type":"request.resolved","v":1,"at":"' + AT + '","id":"r1","result":{"type":"RESOLVED","id":"r1",'
        '"actionId":"approve","externalRef":"inbox:r1","feedbacks":{}},"resolvedAt":"' + EARLIER + '"}'
    )
    await redis.xadd(state.keys.events, {"event": legacy})
    await state.rebuild()
    record = await state.get("r1")
    assert record is not None
    assert (record.status, record.resolved_at) == ("resolved", EARLIER)


def test_a_created_event_keeps_the_request_not_what_the_record_adds() -> None:
    event = RequestCreated(at=AT, request=_new())
    data = json.loads(encode_event(event))
    assert data["request"] == {
        "id": "r1",
        "token": "t-r1",
        "channel": "inbox",
        "message": "m",
        "actions": [{"id": "approve"}],
    }
    assert "record" not in data
    decoded = decode_event(encode_event(event))
    assert isinstance(decoded, RequestCreated)
    record = decoded.record
    assert (record.status, record.created_at, record.namespace) == ("pending", AT, "global")
    assert event.subjects() == ("r1",)


@pytest.mark.redis
async def test_the_record_a_created_event_rebuilds_is_the_live_one(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await state.create(_new("r1"))
    live = await redis.get(state.keys.req("r1"))
    ((_, fields),) = await redis.xrange(state.keys.events)
    event = decode_event(fields[b"event"])
    assert isinstance(event, RequestCreated)
    assert encode(event.record) == live
    await state.rebuild()
    assert await redis.get(state.keys.req("r1")) == live


@pytest.mark.redis
async def test_a_rebuild_reads_an_earlier_builds_created_event(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await state.ensure_schema()
    legacy = (
        '{"type":"request.created","v":1,"at":"' + AT + '","record":{"id":"r9","token":"t9","channel":"inbox",'
        '"namespace":"ops","message":"m","actions":[{"id":"approve"}],"status":"pending","createdAt":"'
        + EARLIER
        + '"}}'
    )
    await redis.xadd(state.keys.events, {"event": legacy})
    await state.rebuild()
    record = await state.find_by_token("t9")
    assert record is not None
    assert (record.id, record.namespace, record.created_at) == ("r9", "ops", EARLIER)
    assert [type(item.event) for item in await state.audit("r9")] == [RequestCreated]


def test_a_created_event_without_its_request_does_not_decode() -> None:
    with pytest.raises(msgspec.ValidationError, match="needs its `request`"):
        decode_event('{"type":"request.created","v":2,"at":"' + AT + '"}')


@pytest.mark.parametrize(
    ("result", "stored"),
    [
        (
            Resolved(id="r1", action_id="approve", external_ref="inbox:r1", feedbacks={}),
            {"id": "r1", "actionId": "approve", "externalRef": "inbox:r1"},
        ),
        (
            Resolved("r1", "deny", "m1", {"note": "no"}, by=Reviewer(id="u1", name="Ann"), edited=True),
            {"actor": {"id": "u1", "name": "Ann"}, "id": "r1", "actionId": "deny", "externalRef": "m1"}
            | {"feedbacks": {"note": "no"}, "edited": True},
        ),
        (
            Resolved(id="other", action_id="approve", external_ref="x", feedbacks={}, by=Reviewer()),
            {"actor": {}, "id": "r1", "actionId": "approve", "externalRef": "x", "resultId": "other"},
        ),
        (TimedOut(id="r1", external_ref="inbox:r1"), {"id": "r1", "externalRef": "inbox:r1"}),
        (TimedOut(id="other", external_ref=""), {"id": "r1", "externalRef": "", "resultId": "other"}),
    ],
)
def test_a_resolution_stores_only_what_its_event_does_not_say(
    result: Resolved | TimedOut, stored: dict[str, Any]
) -> None:
    # Schema version 4: no `result` object repeating the event's type, id and actor, no empty feedbacks.
    data = json.loads(encode_event(resolution_event("r1", result, AT)))
    kind = "request.resolved" if isinstance(result, Resolved) else "request.timed_out"
    assert data == {"type": kind, "v": 4, "at": AT, **stored}
    decoded = decode_event(encode_event(resolution_event("r1", result, AT)))
    assert isinstance(decoded, RequestResolved | RequestTimedOut)
    assert decoded.result == result and decoded.subjects() == ("r1",)


def test_a_resolution_event_has_a_place_for_every_field_of_a_result() -> None:
    # A field added to Resolved or TimedOut must be kept by the event too (`of` and `result`), or be lost.
    assert [f.name for f in msgspec.structs.fields(Resolved)] == [
        "id",
        "action_id",
        "external_ref",
        "feedbacks",
        "by",
        "edited",
    ]
    assert [f.name for f in msgspec.structs.fields(TimedOut)] == ["id", "external_ref"]


def test_a_resolution_without_its_decision_is_refused_when_read() -> None:
    # Checked by `result` (what reducing it reads), not on every decode: replay decodes every event.
    resolved = decode_event('{"type":"request.resolved","v":4,"at":"' + AT + '","id":"r1","externalRef":"x"}')
    assert isinstance(resolved, RequestResolved)
    with pytest.raises(msgspec.ValidationError, match="needs its `actionId`"):
        _ = resolved.result
    timed_out = decode_event('{"type":"request.timed_out","v":4,"at":"' + AT + '","id":"r1"}')
    assert isinstance(timed_out, RequestTimedOut)
    with pytest.raises(msgspec.ValidationError, match="needs its `externalRef`"):
        _ = timed_out.result


@pytest.mark.redis
@pytest.mark.parametrize("version", [2, 3])
async def test_an_earlier_builds_resolution_rebuilds_to_the_live_bytes(
    redis: Redis, table_name: str, version: int
) -> None:
    # The same decision written as schema 2/3 (`result` whole) and as 4: the record is the same bytes.
    state = StreamState(redis, table_name=table_name)
    await state.create(_new("r1"))
    by = Reviewer(name="Ann")
    await state.resolve("r1", Resolved("r1", "approve", "inbox:r1", {"note": "ok"}, by=by, edited=True))
    live = await redis.get(state.keys.req("r1"))
    rows: Any = await redis.xrange(state.keys.events)
    position, fields = rows[-1]
    event = decode_event(fields[b"event"])
    assert isinstance(event, RequestResolved) and b'"result"' not in fields[b"event"]
    legacy = (
        '{"type":"request.resolved","v":' + str(version) + ',"at":"' + event.at + '","actor":{"name":"Ann"},'
        '"id":"r1","result":{"type":"RESOLVED","id":"r1","actionId":"approve","externalRef":"inbox:r1",'
        '"feedbacks":{"note":"ok"},"by":{"name":"Ann"},"edited":true}}'
    )
    await redis.xdel(state.keys.events, position)
    await redis.xadd(state.keys.events, {"event": legacy})
    await state.rebuild()
    assert await redis.get(state.keys.req("r1")) == live
