"""The replay script (`replay_lua.REPLAY_LUA`) projects plain request events byte for byte as the Python
steps do: the live projection (written through the steps) equals a replay that ran partly in Lua, partly
in Python, whatever the script's chunk and the hand-over size; and the script really took events."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from hitl_streams import (
    NewBatch,
    NewHumanRequest,
    Resolved,
    Reviewer,
    StreamState,
    TimedOut,
    TimelineEntry,
    actions,
    field,
)
from hitl_streams.history import events as ev
from hitl_streams.streams import replay as replay_module
from hitl_streams.streams.stream_state import default_projector

pytestmark = pytest.mark.redis

PLAIN = actions().approve().deny().build()
FORM = actions().approve(fields={"n": field.text(label="N", default="d")}).deny().build()
CONTEXTS: list[dict[str, Any] | None] = [
    None,
    {"build": 1, "service": "payments-api"},
    {"status": "pending", "createdAt": "x", "nested": {"a": [1, 2.5, {"b": None}]}},  # record-like members
    {"ends": {"in": {"braces": {}}}},
    {"text": 'a "quoted" word \\ and a\nnewline'},  # escaped: Python's
    {"unicode": "déjà vu ✓", "emoji": "🙂"},
    {"big": 2**60, "neg": -3, "float": 1e-7, "list": []},
]


async def write_history(state: StreamState) -> None:
    """Requests of every shape the script takes and of shapes it leaves to Python, interleaved."""
    for i in range(28):
        if i == 8:
            await state.create_batch(NewBatch(id="B", channel="c", message="b", actions=PLAIN, context={"k": 1}))
        context = CONTEXTS[i % len(CONTEXTS)]
        await state.create(
            NewHumanRequest(
                id=f"r{i}",
                token=f"t-{i}",
                channel="slack",
                namespace="global" if i % 3 else "ops",
                message=f"Deploy #{i}?" if i % 5 else "Déploiement «x»",
                actions=FORM if i % 4 == 0 else PLAIN,
                context=context,
                batch_id="B" if i % 9 == 8 else None,
                batch_index=i if i % 9 == 8 else None,
            )
        )
        if i % 6 == 1:
            await state.append_timeline(
                TimelineEntry(id=f"e{i}", thread_id="th", message="m", created_at="2026-01-01T00:00:00.000Z")
            )
    for i in range(28):
        if i % 7 == 2:
            await state.set_external_id(f"r{i}", f"ext-{i}")  # a record with an externalId
        if i % 7 == 3:
            await state.set_external_id(f"r{i}", f"ext-{i}", "oncall")  # and externalIds
    for i in reversed(range(28)):  # some resolved long after they were created
        if i % 10 == 9:
            continue  # left pending
        if i % 5 == 0:
            await state.resolve(f"r{i}", TimedOut(f"r{i}", f"x-{i}"))
        elif i % 5 == 1:
            await state.resolve(f"r{i}", Resolved(f"r{i}", "approve", f"s:{i}", {"n": "v"}, by=Reviewer(id="u")))
        elif i % 5 == 2:
            await state.resolve(f"r{i}", Resolved(f"other-{i}", "deny", f"s:{i}", {}))  # a resultId
        else:
            await state.resolve(f"r{i}", Resolved(f"r{i}", "approve", f"s:{i}", {}))


@pytest.mark.parametrize(("chunk", "handover"), [(1, 1), (3, 2), (1000, 32)])
async def test_a_replay_partly_in_lua_equals_the_live_projection(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch, chunk: int, handover: int
) -> None:
    monkeypatch.setattr(replay_module, "LUA_CHUNK", chunk)
    monkeypatch.setattr(replay_module, "LUA_HANDOVER", handover)
    taken: list[int] = []
    run = replay_module._replay_lua

    async def counted(*args: Any) -> Any:
        result = await run(*args)
        taken.append(result[0])
        return result

    monkeypatch.setattr(replay_module, "_replay_lua", counted)
    state = StreamState(redis, table_name=table_name)
    await write_history(state)
    report = await state.verify(sweep=True)
    assert report.clean, report.to_dict()
    assert sum(taken) > 0  # some went through the script
    await state.rebuild(sweep=True)
    report = await state.verify(sweep=True)
    assert report.clean, report.to_dict()
    assert await redis.keys(state.keys.prefix + ":scratch:*") == []


async def test_a_plain_history_is_projected_by_the_script_alone(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "LUA_CHUNK", 7)
    state = StreamState(redis, table_name=table_name)
    for i in range(30):
        await state.create(
            NewHumanRequest(id=f"r{i}", token=f"t{i}", channel="c", message="m", actions=PLAIN, context=CONTEXTS[1])
        )
        if i % 3:
            await state.resolve(f"r{i - 1}", Resolved(f"r{i - 1}", "approve", "s", {}))

    async def no_python(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an event was left to Python")

    monkeypatch.setattr(replay_module, "_replay_python", no_python)
    report = await state.verify(sweep=True)
    assert report.clean, report.to_dict()


async def test_every_shape_the_script_takes_is_taken_by_it_alone(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """External ids (the channel's own and others, again and changed), resolutions with a reviewer,
    feedbacks, edited and another result id, timeouts, and delivery audit events, on records written in
    the same script call and in earlier ones (a chunk of 2)."""
    monkeypatch.setattr(replay_module, "LUA_CHUNK", 2)
    state = StreamState(redis, table_name=table_name)
    at = "2026-01-01T00:00:00.000Z"
    for i in range(12):
        await state.create(
            NewHumanRequest(
                id=f"r{i}", token=f"t{i}", channel="slack", namespace="ops" if i % 2 else "global", message="m",
                actions=FORM, context=CONTEXTS[(0, 1, 3, 5, 6)[i % 5]],
            )
        )  # fmt: skip
    for i in range(12):
        await state.record(ev.RequestDelivered(at=at, id=f"r{i}", channel="slack", external_id=f"ts{i}"))
        await state.set_external_id(f"r{i}", f"ts{i}")  # the channel's own: externalId and externalIds
        if i % 3 == 0:
            await state.set_external_id(f"r{i}", f"pd{i}", "pager")  # another key
            await state.set_external_id(f"r{i}", f"pd{i}", "pager")  # again: no change
            await state.set_external_id(f"r{i}", f"ts{i}-2")  # changed
    await state.record(ev.RequestReminded(at=at, id="r1", channel="slack", message="ping", actor=Reviewer(name="x")))
    results: list[Any] = [
        Resolved("r0", "approve", "s:0", {}),
        Resolved("r1", "approve", "s:1", {}, by=Reviewer(id="u", name="Ada", email="a@x.io")),
        Resolved("r2", "approve", "s:2", {"n": "v", "deep": {"x": [1, {"y": "}}"}]}}, edited=True),
        Resolved("other", "deny", "s:3", {"n": "w"}, by=Reviewer(id="u"), edited=True),
        TimedOut("r4", "x:4"),
        TimedOut("other-5", "x:5"),
        Resolved("r6", "approve", "s:6", {}, by=Reviewer()),
    ]
    for i, result in enumerate(results):
        await state.resolve(f"r{i}", result)
    await state.set_external_id("r0", "late")  # on a resolved record

    async def no_python(*args: Any, **kwargs: Any) -> Any:
        left = await redis.xrange(state.keys.events, "(" + kwargs["after"], "+", count=1)
        raise AssertionError(f"an event was left to Python: {left}")

    monkeypatch.setattr(replay_module, "_replay_python", no_python)
    report = await state.verify(sweep=True)
    assert report.clean, report.to_dict()
    monkeypatch.setattr(replay_module, "LUA_CHUNK", 1000)
    report = await state.verify(sweep=True)
    assert report.clean, report.to_dict()


async def test_the_script_is_used_only_with_the_default_steps(redis: Redis, table_name: str) -> None:
    projector = default_projector()
    assert replay_module._lua_usable(redis, projector)
    fewer = type(projector)(projector.steps[:-1])
    assert not replay_module._lua_usable(redis, fewer)


async def test_without_the_script_the_replay_is_the_same(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = StreamState(redis, table_name=table_name)
    await write_history(state)
    monkeypatch.setattr(replay_module, "USE_LUA", False)
    report = await state.verify(sweep=True)
    assert report.clean, report.to_dict()
