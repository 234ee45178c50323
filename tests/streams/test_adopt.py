"""Adopting a TypeScript `IoredisState` deployment (SPEC §5.6): every record becomes an imported event, the
keys keep their meaning, `verify` is clean, and the state answers exactly as before."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from ts_layout import write_ts_layout

from hitl_streams import Resolved, SchemaError, StreamState
from hitl_streams.actions import Action, SelectField
from hitl_streams.streams.adopt import AdoptError
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis


async def answers(state: StreamState) -> dict[str, Any]:
    """Everything a reader can ask the state about the reference data set."""
    out: dict[str, Any] = {}
    for rid in ("r1", "r2", "r3", "r4", "r99"):
        out[f"get {rid}"] = await state.get(rid)
    for status in (None, "pending", "resolved"):
        for ns in (None, "global", "ops"):
            out[f"list {status} {ns}"] = await state.list(status=status, namespace=ns)  # type: ignore[arg-type]
            out[f"count {status} {ns}"] = await state.count(status=status, namespace=ns)  # type: ignore[arg-type]
    out["page 1"] = page = await state.list(limit=2)
    out["page 2"] = await state.list(limit=2, cursor=page.next_cursor)
    for token in ("tok1", "tok2", "tok3", "tok4", "nope"):
        out[f"token {token}"] = await state.find_by_token(token)
    for ext in ("m1", "m2old", "m2new", "gone"):
        out[f"ext {ext}"] = await state.find_by_external_id(ext)
    out["batch"] = await state.get_batch("b1")
    out["items"] = await state.list_by_batch("b1")
    out["timeline"] = await state.timeline("r1")
    out["notify"] = await state.get_notify_delivery("n1")
    return out


def reader_without_schema(redis: Redis, table_name: str) -> StreamState:
    """A StreamState reading the TypeScript keys as they are (its schema check would refuse them)."""
    state = StreamState(redis, table_name=table_name)
    state._ready = True
    return state


async def test_adopt_keeps_every_answer_and_verify_is_clean(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await write_ts_layout(redis, state.keys.prefix)
    with pytest.raises(SchemaError, match="adopt"):
        await state.get("r1")
    before = await answers(reader_without_schema(redis, table_name))

    report = await state.adopt()

    assert (report.requests, report.batches, report.timeline_entries, report.notify_deliveries) == (4, 1, 2, 1)
    assert report.events == 8 == await redis.xlen(state.keys.events)
    p = state.keys.prefix
    assert f"{p}:req:r2" in report.rewritten and f"{p}:req:r3" in report.rewritten
    assert f"{p}:req:r1" not in report.rewritten  # already canonical: byte for byte the TypeScript JSON
    assert report.dropped == [f"{p}:idx:ext:gone"]
    assert (await state.verify()).clean
    assert await answers(state) == before

    # What the reader sees, spelled out.
    r2 = await state.get("r2")
    assert r2 is not None and r2.context == {"tags": {}, "n": 3}
    assert r2.actions[0] == Action(id="approve", fields={"env": SelectField(label="Env", options=[])})
    assert isinstance(r2.result, Resolved) and r2.result.action_id == "deny" and r2.result.by is not None
    r3 = await state.get("r3")
    assert r3 is not None and r3.namespace == "global"
    assert [(a.id, a.label) for a in r3.actions] == [("approve", "Go"), ("deny", None)]
    assert (await state.find_by_external_id("m2old")) == r2  # the stale entry still answers
    assert await state.find_by_external_id("gone") is None
    assert [r.id for r in await state.list_by_batch("b1")] == ["r3", "r4"]
    assert [r.id for r in (await state.list(status="pending")).items] == ["r3", "r1"]
    assert [e.id for e in await state.timeline("r1")] == ["e1", "e2"]
    assert {_text(m) for m in await redis.smembers(state.keys.meta_migrations)} >= {
        "001-initial",
        "002-sorted-indexes",
        "003-namespace-indexes",
        *state.projector.ledger_ids,
    }

    # History starts at adoption: the audit trail of r1 lists its import, its thread and its notification.
    kinds = [type(a.event).__name__ for a in await state.audit("r1")]
    assert kinds == ["RequestImported", "TimelineImported", "NotifyImported", "TimelineImported"]

    # A replay of that history gives the very same keys, stale lookup included.
    adopted = await snapshot(redis, state.keys)
    await state.rebuild()
    assert await snapshot(redis, state.keys) == adopted

    # The prefix is a StreamState prefix now: it writes, and a second adoption is refused.
    await state.resolve("r1", Resolved("r1", "approve", "m1", {}))
    assert (await state.verify()).clean
    with pytest.raises(AdoptError, match="already has history"):
        await state.adopt()


async def test_legacy_set_indexes_become_sorted_sets(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await write_ts_layout(redis, state.keys.prefix, legacy_set_indexes=True)
    assert await redis.type(state.keys.idx_all) in (b"set", "set")

    report = await state.adopt()

    assert state.keys.idx_all in report.repaired and state.keys.idx_status("pending") in report.repaired
    assert state.keys.idx_ns("global") in report.added
    assert await redis.type(state.keys.idx_all) in (b"zset", "zset")
    assert await state.count() == 4 and await state.count(status="pending") == 2
    assert await state.count(namespace="ops", status="resolved") == 1
    assert [r.id for r in (await state.list()).items] == ["r4", "r3", "r2", "r1"]
    assert (await state.verify()).clean


async def test_duplicate_token_stays_with_the_request_the_index_names(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    p = state.keys.prefix
    await write_ts_layout(redis, p)
    # TypeScript `create` overwrote the token index: r1 and r5 share tok1, the index names r5 (the newer one).
    r5 = (await redis.get(f"{p}:req:r1")).replace(b'"r1"', b'"r5"').replace(b"10:00:01", b"09:00:00")
    await redis.set(f"{p}:req:r5", r5)
    await redis.set(f"{p}:idx:token:tok1", "r5")

    await state.adopt()

    found = await state.find_by_token("tok1")
    assert found is not None and found.id == "r5"
    assert (await state.verify()).clean
    before = await snapshot(redis, state.keys)
    await state.rebuild()
    assert await snapshot(redis, state.keys) == before


async def test_unknown_keys_or_unreadable_records_refuse_and_change_nothing(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    p = state.keys.prefix
    await write_ts_layout(redis, p)
    await redis.set(f"{p}:mystery", "1")
    await redis.set(f"{p}:req:bad", "{not json")
    await redis.set(
        f"{p}:req:r7",
        b'{"id":"r8","token":"t","channel":"c","message":"m","actions":[],'
        b'"status":"pending","createdAt":"2026-03-01T10:00:00.000Z"}',
    )
    everything = await snapshot(redis, state.keys, projection_only=False)

    with pytest.raises(AdoptError) as caught:
        await state.adopt()

    message = str(caught.value)
    assert f"{p}:mystery: not part of the TypeScript key layout" in message
    assert f"{p}:req:bad: cannot be decoded" in message
    assert f'{p}:req:r7: holds the record of id "r8"' in message
    assert "nothing was changed" in message
    assert await snapshot(redis, state.keys, projection_only=False) == everything


async def test_a_field_the_decoder_would_drop_refuses(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    p = state.keys.prefix
    await write_ts_layout(redis, p)
    value = (await redis.get(f"{p}:batch:b1")).replace(b'"channel"', b'"priority":"high","channel"')
    await redis.set(f"{p}:batch:b1", value)
    with pytest.raises(AdoptError, match="would be lost: priority"):
        await state.adopt()
    assert await redis.xlen(state.keys.events) == 0


async def test_an_empty_prefix_adopts_to_an_empty_history(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    report = await state.adopt()
    assert report.events == 0 and await redis.xlen(state.keys.events) == 0
    assert (await state.schema_status()).pending == []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_cluster_mode_refuses_untagged_typescript_keys(redis: Redis, table_name: str) -> None:
    plain = StreamState(redis, table_name=table_name)
    await write_ts_layout(redis, plain.keys.prefix)
    tagged = StreamState(redis, table_name=table_name, cluster=True)
    with pytest.raises(AdoptError, match="no hash tag"):
        await tagged.adopt()
    assert await redis.xlen(tagged.keys.events) == 0 and await redis.xlen(plain.keys.events) == 0


async def test_an_interrupted_adoption_can_be_run_again(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from hitl_streams.history.keys import Keys
    from hitl_streams.streams import adopt as adopt_module
    from hitl_streams.streams.replay import projection_keys

    state = StreamState(redis, table_name=table_name)
    await write_ts_layout(redis, state.keys.prefix)
    before = await answers(reader_without_schema(redis, table_name))

    async def half_a_swap(redis: Any, keys: Keys, scratch: Keys) -> int:
        names = sorted([k async for k in projection_keys(redis, scratch)])
        for name in names[: len(names) // 2]:
            await redis.rename(name, keys.prefix + name[len(scratch.prefix) :])
        raise asyncio.CancelledError  # Ctrl-C in the middle of the swap

    monkeypatch.setattr(adopt_module, "swap_in", half_a_swap)
    with pytest.raises(asyncio.CancelledError):
        await state.adopt()
    monkeypatch.undo()
    assert await redis.xlen(state.keys.events) == 0  # no history yet: the prefix is still "to adopt"
    assert [k async for k in redis.scan_iter(match=state.keys.prefix + ":scratch:*")] == []

    await state.adopt()
    assert (await state.verify()).clean
    assert await answers(state) == before
