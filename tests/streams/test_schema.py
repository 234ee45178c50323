"""Migrations are replayable projection steps (SPEC §5.5): ordered, applied by replaying history,
idempotent, safe across replicas, never poisoning an instance after a failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hitl_streams import (
    NewHumanRequest,
    Resolved,
    SchemaError,
    StreamState,
    TimelineEntry,
    actions,
)
from hitl_streams.history.projection import Ops, Projector, Step, load_steps, migrations_dir
from hitl_streams.history.reducer import Change
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis


async def populate(state: StreamState, n: int = 12) -> None:
    for i in range(n):
        await state.create(
            NewHumanRequest(
                id=f"r{i}",
                token=f"t{i}",
                channel="inbox",
                namespace="team" if i % 2 else "global",
                message="m",
                actions=actions().approve().build(),
            )
        )
        if i % 3 == 0:
            await state.set_external_id(f"r{i}", f"x{i}")
        if i % 2 == 0:
            await state.resolve(f"r{i}", Resolved(f"r{i}", "approve", "", {}))
    await state.append_timeline(
        TimelineEntry(id="e", thread_id="r1", message="n", created_at="2026-01-01T00:00:00.000Z")
    )


def test_steps_are_numbered_ordered_and_documented() -> None:
    steps = load_steps()
    assert [s.id[:4] for s in steps] == [f"{i:04d}" for i in range(1, len(steps) + 1)]
    assert all(s.description.strip() for s in steps)
    assert migrations_dir().name == "migrations"


def test_a_gap_in_numbering_is_refused(tmp_path: Path) -> None:
    source = migrations_dir() / "0001_records.py"
    (tmp_path / "0001_records.py").write_text(source.read_text())
    (tmp_path / "0003_late.py").write_text(source.read_text().replace("0001_records", "0003_late"))
    with pytest.raises(SchemaError, match="without gaps"):
        load_steps(tmp_path)


async def test_fresh_prefix_records_every_step_and_typescript_ids(state_factory: StreamState, redis: Redis) -> None:
    state = state_factory
    await state.ensure_schema()
    ledger = {m.decode() for m in await redis.smembers(state.keys.meta_migrations)}
    assert ledger == set(state.projector.ledger_ids)
    status = await state.schema_status()
    assert status.pending == [] and len(status.applied) == len(load_steps())


@pytest.fixture
def state_factory(redis: Redis, table_name: str) -> StreamState:
    return StreamState(redis, table_name=table_name)


async def test_a_new_step_is_applied_by_replaying_history(redis: Redis, table_name: str) -> None:
    steps = load_steps()
    cut = [s.id for s in steps].index("0007_request_audit_buckets")  # later steps are pending too
    old = StreamState(redis, table_name=table_name, projector=Projector(steps[:cut]))
    await populate(old)
    # The old deployment (steps 0001-0006) keeps a request's audit positions in a LIST of its own.
    assert await redis.exists(old.keys.audit("r0")) == 1
    assert await redis.hget(old.keys.audit_bucket("r0"), "r0") is None
    trail = await old.audit("r0")

    new = StreamState(redis, table_name=table_name)
    assert [s.id for s in (await new.schema_status()).pending] == [s.id for s in steps[cut:]]
    await new.ensure_schema()
    assert (await new.schema_status()).pending == []
    upgraded = await snapshot(redis, new.keys)
    assert await redis.exists(new.keys.audit("r0")) == 0  # step 0007 moved it into a bucket
    assert (await redis.hget(new.keys.audit_bucket("r0"), "r0") or b"").decode().split(" ") == [
        item.position for item in trail
    ]
    assert await new.audit("r0") == trail
    report = await new.verify()
    assert report.clean, report.to_dict()
    await new.rebuild()
    assert await snapshot(redis, new.keys) == upgraded


async def test_ten_replicas_apply_a_pending_step_once(redis: Redis, table_name: str) -> None:
    steps = load_steps()
    await populate(StreamState(redis, table_name=table_name, projector=Projector(steps[:-1])))
    replicas = [StreamState(redis, table_name=table_name) for _ in range(10)]
    await asyncio.gather(*(r.ensure_schema() for r in replicas))
    assert await redis.hget(replicas[0].keys.meta_projection, "rebuilds") == b"1"
    assert (await replicas[0].verify()).clean
    await asyncio.gather(*(r.ensure_schema() for r in replicas))  # idempotent
    assert await redis.hget(replicas[0].keys.meta_projection, "rebuilds") == b"1"


async def test_a_failed_migration_does_not_poison_the_instance(redis: Redis, table_name: str) -> None:
    steps = load_steps()
    await populate(StreamState(redis, table_name=table_name, projector=Projector(steps[:-1])))
    failures = {"left": 1}

    def flaky(change: Change, ops: Ops) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("step crashed")
        steps[-1].project(change, ops)

    state = StreamState(
        redis,
        table_name=table_name,
        projector=Projector([*steps[:-1], Step(steps[-1].id, steps[-1].description, flaky)]),
    )
    with pytest.raises(RuntimeError, match="step crashed"):
        await state.ensure_schema()
    assert steps[-1].id not in {m.decode() for m in await redis.smembers(state.keys.meta_migrations)}
    assert await redis.exists(state.keys.meta_lock) == 0  # the lock was released
    await state.ensure_schema()  # the next call retries, and succeeds
    assert (await state.schema_status()).pending == []
    assert (await state.verify()).clean


async def test_typescript_data_without_history_must_be_adopted(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    await redis.set(state.keys.req("legacy"), b'{"id":"legacy"}')
    await redis.sadd(state.keys.meta_migrations, "001-initial", "002-sorted-indexes", "003-namespace-indexes")
    with pytest.raises(SchemaError, match="adopt"):
        await state.ensure_schema()
    assert await redis.get(state.keys.req("legacy")) == b'{"id":"legacy"}'


async def test_a_step_skipped_for_an_event_it_does_not_declare_would_have_written_nothing(
    redis: Redis, table_name: str
) -> None:
    """`Step.events` only saves calls: over a history of every kind of event, projecting with the
    declarations gives exactly the writes of calling every step for every event."""
    import dataclasses

    from event_history import populate as populate_all

    from hitl_streams._time import now_iso
    from hitl_streams.history import events as ev
    from hitl_streams.history.reducer import apply, key_of, subject_ref

    state = StreamState(redis, table_name=table_name)
    await populate_all(state)
    await state.reviewers.add("ann", namespaces=["global"], email="ann@example.com")
    await state.reviewers.issue("ann", "token")
    link = await state.reviewers.issue("ann", "link")
    signed = await state.reviewers.sign_in(link.token)
    assert signed is not None
    await state.reviewers.sign_out(signed[1].token)
    await state.reviewers.revoke("ann")
    at = now_iso()
    common = {"at": at, "id": "r3", "subject": "request"}
    await state.record(ev.ScheduleSet(**common, anchor=at, reminders=[], next_at=at, next_fire=0))
    await state.record(ev.ScheduleFired(**common, fire=0, due_at=at, late_ms=1, outcome="sent"))
    await state.record(ev.ScheduleEnded(**common, reason="decided"))

    declared = state.projector
    every = Projector([dataclasses.replace(step, events=None) for step in declared.steps])
    subjects: dict[str, object] = {}
    seen: set[type] = set()
    async for record in state.history():
        event = record.event
        ref = subject_ref(event, state.keys)
        change = apply(event, subjects.get(ref[0]) if ref else None, state.keys)  # type: ignore[arg-type]
        assert declared.project(change).items == every.project(change).items, type(event).__name__
        if change.after is not None:
            subjects[key_of(change.after, state.keys)] = change.after
        seen.add(type(event))
    skipped = {cls for cls in seen if len(declared.functions_for(cls)) < len(declared.steps)}
    assert len(seen) >= 25 and skipped == seen
