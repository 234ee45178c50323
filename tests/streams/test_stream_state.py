"""StreamState guarantees (SPEC §5) against a real Redis: one change one event, atomic, race-free,
no cjson damage, caller input validated, readable history."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hitl_streams import (
    AlreadyResolvedError,
    DuplicateRequestError,
    DuplicateTokenError,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    Resolved,
    Reviewer,
    StreamState,
    TimedOut,
    TimelineEntry,
    UnknownBatchError,
    UnknownNotifyDeliveryError,
    UnknownRequestError,
    ValidationError,
    actions,
    field,
)
from hitl_streams.history.events import encode_event
from hitl_streams.history.keys import OPS_PER_BUCKET
from hitl_streams.streams import stream_state as stream_state_module
from hitl_streams.streams.scripts import OP_TTL_SECONDS
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis

ACTIONS = actions().approve(fields={"note": field.text(label="Note", default="ok")}).deny().build()


def request(rid: str, **kw: Any) -> NewHumanRequest:
    return NewHumanRequest(
        id=rid, token=kw.pop("token", f"tok_{rid}"), channel="lead-approvals", message="m", actions=ACTIONS, **kw
    )


@pytest.fixture
async def state(redis: Redis, table_name: str) -> StreamState:
    s = StreamState(redis, table_name=table_name)
    await s.ensure_schema()
    return s


async def events(redis: Redis, state: StreamState) -> list[dict[str, Any]]:
    rows = await redis.xrange(state.keys.events)
    return [json.loads(fields[b"event"]) for _, fields in rows]


async def test_every_mutation_appends_exactly_one_readable_event(state: StreamState, redis: Redis) -> None:
    steps: list[tuple[str, Callable[[], Awaitable[None]], tuple[str, ...]]] = [
        ("request.created", lambda: state.create(request("a", context={"k": 1})), ("a",)),
        ("request.external_id_set", lambda: state.set_external_id("a", "ext-a"), ("a",)),
        ("batch.created", lambda: state.create_batch(NewBatch(id="b", channel="inbox")), ("b",)),
        ("batch.external_id_set", lambda: state.set_batch_external_id("b", "ext-b"), ("b",)),
        ("request.created", lambda: state.create(request("b:0", batch_id="b", batch_index=0)), ("b:0", "b")),
        (
            "timeline.appended",
            lambda: state.append_timeline(
                TimelineEntry(id="e1", thread_id="a", message="hi", created_at="2026-01-01T00:00:00.000Z")
            ),
            ("a",),
        ),
        (
            "notify.created",
            lambda: state.create_notify_delivery(NewNotifyDelivery(id="n", channel="inbox", message="x", group_id="a")),
            ("n", "a"),
        ),
        ("notify.external_id_set", lambda: state.set_notify_delivery_external_id("n", "ext-n"), ("n",)),
        (
            "request.resolved",
            lambda: state.resolve("a", Resolved("a", "approve", "ext-a", {"note": "ok"}, by=Reviewer(id="u1"))),
            ("a",),
        ),
        ("request.timed_out", lambda: state.resolve("b:0", TimedOut("b:0", "")), ("b:0",)),
    ]
    for expected_type, mutate, subjects in steps:
        before = await redis.xlen(state.keys.events)
        await mutate()
        assert await redis.xlen(state.keys.events) == before + 1, expected_type
        last = (await events(redis, state))[-1]
        assert last["type"] == expected_type
        assert last["v"] == 4
        assert last["at"].endswith("Z") and len(last["at"]) == 24
        for subject in subjects:
            audit = await state.audit(subject)
            assert json.loads(encode_event(audit[-1].event))["type"] == expected_type, subject
            if expected_type.startswith("request.") and subject == subjects[0]:  # a request's own events
                field = await redis.hget(state.keys.audit_bucket(subject), subject)
                assert field is not None and field.decode().split(" ")[-1] == audit[-1].position
            else:
                assert (await redis.lrange(state.keys.audit(subject), -1, -1))[0].decode() == audit[-1].position
    resolved = (await events(redis, state))[-2]
    assert resolved["actor"] == {"id": "u1"}
    assert resolved["id"] == "a" and resolved["actionId"] == "approve"
    assert [type(r.event).__name__ for r in await state.audit("a")] == [
        "RequestCreated",
        "RequestExternalIdSet",
        "TimelineAppended",
        "NotifyCreated",
        "RequestResolved",
    ]
    assert (await state.verify()).clean


async def test_refused_mutations_write_nothing(state: StreamState, redis: Redis) -> None:
    await state.create(request("a"))
    await state.resolve("a", TimedOut("a", ""))
    before_events = await redis.xlen(state.keys.events)
    before = await snapshot(redis, state.keys)
    refused: list[tuple[type[Exception], Callable[[], Awaitable[None]]]] = [
        (AlreadyResolvedError, lambda: state.resolve("a", TimedOut("a", ""))),
        (UnknownRequestError, lambda: state.resolve("nope", TimedOut("nope", ""))),
        (UnknownRequestError, lambda: state.set_external_id("nope", "x")),
        (UnknownBatchError, lambda: state.set_batch_external_id("nope", "x")),
        (UnknownNotifyDeliveryError, lambda: state.set_notify_delivery_external_id("nope", "x")),
        (DuplicateTokenError, lambda: state.create(request("other", token="tok_a"))),
        (DuplicateRequestError, lambda: state.create(request("a", token="fresh"))),
        (ValidationError, lambda: state.create(request("bad", namespace="no spaces"))),
        (ValidationError, lambda: state.create(request("ctl\x00id"))),
        (
            ValidationError,
            lambda: state.append_timeline(
                TimelineEntry(id="e", thread_id="entry:x", message="m", created_at="2026-01-01T00:00:00.000Z")
            ),
        ),
        (ValidationError, lambda: state.create_batch(NewBatch(id="ext:x", channel="inbox"))),
    ]
    for error, mutate in refused:
        with pytest.raises(error):
            await mutate()
    assert await redis.xlen(state.keys.events) == before_events
    assert await snapshot(redis, state.keys) == before


@pytest.mark.parametrize("damaged", ["idx:status:resolved", "audits", "idx:ns:global:status:pending"])
async def test_a_projection_key_of_the_wrong_type_stops_the_write_before_anything_is_written(
    state: StreamState, redis: Redis, damaged: str
) -> None:
    """Redis does not roll a script back: every key's type is checked before the event is appended."""
    await state.create(request("a"))
    name = state.keys.audit_bucket("a") if damaged == "audits" else f"{state.keys.prefix}:{damaged}"
    await redis.delete(name)
    await redis.sadd(name, "not what the projection keeps")
    before_events = await redis.xlen(state.keys.events)
    before = await snapshot(redis, state.keys)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await state.resolve("a", TimedOut("a", ""))
    assert await redis.xlen(state.keys.events) == before_events
    assert await snapshot(redis, state.keys) == before


async def test_a_writes_outcome_is_kept_for_the_op_ttl_in_its_seconds_bucket(state: StreamState, redis: Redis) -> None:
    await state.create(request("a"))
    (bucket,) = [key async for key in redis.scan_iter(match=state.keys.prefix + ":ops:*")]
    second = int(bucket.decode().rsplit(":", 1)[1])
    assert abs(second - time.time()) < 5
    assert 0 < await redis.ttl(bucket) <= OP_TTL_SECONDS
    ((position, _),) = await redis.xrange(state.keys.events)
    ((op_id, outcome),) = (await redis.hgetall(bucket)).items()
    assert outcome == position and len(base64.b64decode(op_id, validate=True)) == 12


async def test_a_process_puts_each_few_dozen_writes_of_one_second_in_a_part_of_its_own(
    state: StreamState, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of op ids in one HASH make it a hash table (~115 B per write); small parts stay listpacks."""
    monkeypatch.setattr(stream_state_module, "time", SimpleNamespace(time=lambda: 1_800_000_000.25))
    await asyncio.gather(*(state.create(request(f"r{i}")) for i in range(2 * OPS_PER_BUCKET + 44)))
    parts = [state.keys.ops(1_800_000_000), *(state.keys.ops(1_800_000_000, part) for part in (1, 2))]
    assert [await redis.hlen(part) for part in parts] == [OPS_PER_BUCKET, OPS_PER_BUCKET, 44]
    assert [await redis.object("encoding", part) for part in parts] == [b"listpack"] * 3
    assert len([key async for key in redis.scan_iter(match=state.keys.prefix + ":ops:*")]) == 3
    outcomes = [position for part in parts for position in (await redis.hgetall(part)).values()]
    assert sorted(outcomes) == sorted(position for position, _ in await redis.xrange(state.keys.events))


async def test_duplicate_token_names_the_owner_not_the_token(state: StreamState) -> None:
    await state.create(request("a", token="secret-token"))
    with pytest.raises(DuplicateTokenError) as caught:
        await state.create(request("b", token="secret-token"))
    assert caught.value.existing_id == "a"
    assert "secret-token" not in str(caught.value)
    assert await state.get("b") is None


async def test_concurrent_resolves_one_wins_one_event(state: StreamState, redis: Redis) -> None:
    await state.create(request("a"))
    results = await asyncio.gather(
        *(state.resolve("a", Resolved("a", "deny", "", {}, by=Reviewer(id=str(i)))) for i in range(50)),
        state.resolve("a", TimedOut("a", "")),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, AlreadyResolvedError) for r in results) == 50
    kinds = [e["type"] for e in await events(redis, state)]
    assert kinds.count("request.resolved") + kinds.count("request.timed_out") == 1
    assert await redis.zrange(state.keys.idx_status("resolved"), 0, -1) == [b"a"]
    assert await redis.zcard(state.keys.idx_status("pending")) == 0


async def test_concurrent_creates_with_one_token_create_one_record(state: StreamState, redis: Redis) -> None:
    results = await asyncio.gather(
        *(state.create(request(f"r{i}", token="same")) for i in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, DuplicateTokenError) for r in results) == 19
    assert await state.count() == 1
    assert [e["type"] for e in await events(redis, state)] == ["request.created"]


async def test_set_external_id_never_clobbers_a_concurrent_resolution(state: StreamState) -> None:
    for i in range(20):
        rid = f"r{i}"
        await state.create(request(rid))
        await asyncio.gather(
            state.set_external_id(rid, f"esc-{i}", "oncall"),
            state.resolve(rid, Resolved(rid, "deny", "", {})),
            state.set_external_id(rid, f"primary-{i}"),
        )
        record = await state.get(rid)
        assert record is not None
        assert record.status == "resolved" and record.result is not None
        assert record.external_ids == {"oncall": f"esc-{i}", "lead-approvals": f"primary-{i}"}
    assert await state.count(status="pending") == 0
    assert (await state.verify()).clean


async def test_stored_json_survives_resolve_without_cjson_damage(state: StreamState, redis: Redis) -> None:
    context = {"z": 1, "tags": [], "big": 12345678901234567, "nested": {"b": [], "a": "é/ü"}, "path": "a/b"}
    await state.create(request("a", context=context))
    await state.resolve("a", Resolved("a", "approve", "", {"note": "ok"}))
    raw = await redis.get(state.keys.req("a"))
    assert raw is not None
    assert (
        b'"context":{"z":1,"tags":[],"big":12345678901234567,"nested":{"b":[],"a":"\xc3\xa9/\xc3\xbc"},"path":"a/b"}'
        in raw
    )
    record = await state.get("a")
    assert record is not None and record.context == context


async def test_projection_matches_the_typescript_layout(state: StreamState, redis: Redis) -> None:
    await state.create(request("a", namespace="team-a"))
    await state.create(request("b"))
    await state.create_batch(NewBatch(id="bt", channel="inbox", message="batch"))
    await state.create(request("bt:0", batch_id="bt", batch_index=0))
    await state.set_external_id("a", "ext-a")
    await state.set_batch_external_id("bt", "ext-bt")
    await state.resolve("b", TimedOut("b", ""))
    await state.append_timeline(
        TimelineEntry(id="e1", thread_id="a", message="m", created_at="2026-11-25T17:03:04.512Z")
    )
    await state.create_notify_delivery(NewNotifyDelivery(id="n1", channel="inbox", message="m", group_id="a"))
    await state.set_notify_delivery_external_id("n1", "ext-n")
    p = state.keys.prefix
    expected_types = {
        f"{p}:req:a": "string",
        f"{p}:idx:token:tok_a": "string",
        f"{p}:idx:ext:ext-a": "string",
        f"{p}:idx:status:pending": "zset",
        f"{p}:idx:status:resolved": "zset",
        f"{p}:idx:all:req": "zset",
        f"{p}:idx:ns:team-a": "zset",
        f"{p}:idx:ns:team-a:status:pending": "zset",
        f"{p}:idx:ns:global:status:resolved": "zset",
        f"{p}:idx:batch:bt": "zset",
        f"{p}:batch:bt": "string",
        f"{p}:idx:batch:ext:ext-bt": "string",
        f"{p}:timeline:entry:e1": "string",
        f"{p}:timeline:a": "zset",
        f"{p}:notify:n1": "string",
        f"{p}:idx:notify:ext:ext-n": "string",
        f"{p}:meta:migrations": "set",
        f"{p}:events": "stream",
    }
    for key, kind in expected_types.items():
        assert (await redis.type(key)).decode() == kind, key
    record = json.loads(await redis.get(f"{p}:req:a") or b"")
    assert list(record) == [
        "id", "token", "channel", "namespace", "message", "actions", "status",
        "externalId", "externalIds", "createdAt",
    ]  # fmt: skip
    from hitl_streams._time import iso_to_ms

    score = await redis.zscore(f"{p}:idx:all:req", "a")
    assert score == iso_to_ms(record["createdAt"])
    assert await redis.zscore(f"{p}:idx:batch:bt", "bt:0") == 0
    assert await redis.zscore(f"{p}:timeline:a", "e1") == iso_to_ms("2026-11-25T17:03:04.512Z")
    assert await redis.get(f"{p}:idx:ext:ext-a") == b"a"
    ledger = {m.decode() for m in await redis.smembers(f"{p}:meta:migrations")}
    assert {"001-initial", "002-sorted-indexes", "003-namespace-indexes"} <= ledger


async def test_reads_typescript_shaped_values(state: StreamState, redis: Redis) -> None:
    """Values as the TypeScript IoredisState writes them, including legacy and cjson-damaged shapes."""
    p = state.keys.prefix
    legacy = {
        "id": "old",
        "token": "t-old",
        "channel": "slack:C1",
        "message": "m",
        "actions": {"submit": {"fields": {"why": {"kind": "select", "label": "Why", "options": {}}}}, "deny": {}},
        "status": "resolved",
        "externalIds": {},
        "result": {"type": "RESOLVED", "id": "old", "actionId": "deny", "externalRef": "", "feedbacks": []},
        "createdAt": "2026-06-01T00:00:00.000Z",
    }
    await redis.set(f"{p}:req:old", json.dumps(legacy))
    record = await state.get("old")
    assert record is not None
    assert record.namespace == "global"
    assert [a.id for a in record.actions] == ["approve", "deny"]
    assert record.external_ids is None
    assert isinstance(record.result, Resolved) and record.result.feedbacks == {}
    await redis.set(f"{p}:req:sub", json.dumps({**legacy, "id": "sub", "actions": [{"id": "submit"}]}))
    sub = await state.get("sub")
    assert sub is not None and [a.id for a in sub.actions] == ["approve"]


async def test_works_with_decode_responses(redis_url: str, redis: Redis, table_name: str) -> None:
    client: Redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        state = StreamState(client, table_name=table_name)
        await state.create(request("a"))
        await state.set_external_id("a", "x")
        await state.resolve("a", Resolved("a", "approve", "x", {"note": "ok"}))
        page = await state.list(limit=1)
        assert [r.id for r in page.items] == ["a"]
        assert (await state.find_by_token("tok_a")) is not None
        assert [type(r.event).__name__ for r in await state.audit("a")][-1] == "RequestResolved"
        report = await state.verify()
        assert report.clean, report.to_dict()
        await state.rebuild()
        assert (await state.verify()).clean
    finally:
        await client.aclose()


def test_public_methods_show_the_state_protocols_signatures() -> None:
    """The slot wrapper keeps each method's own signature visible (keyword names, defaults) to `inspect`."""
    import inspect

    from hitl_streams import State

    names = [n for n, v in vars(State).items() if inspect.iscoroutinefunction(v)]
    assert "list" in names and "set_external_id" in names
    for name in names:
        ours = inspect.signature(getattr(StreamState, name)).parameters
        theirs = inspect.signature(getattr(State, name)).parameters
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ], name
