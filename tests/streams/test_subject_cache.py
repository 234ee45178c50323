"""SubjectCache (the bytes a process last saw per request key) and how StreamState uses it: a guess that
saves the read before a resolve, never an answer. Stale guesses, from another replica or a rebuild, cost a
read and change nothing else; domain errors always come from Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from hitl_streams import AlreadyResolvedError, NewHumanRequest, Resolved, StreamState, TimedOut, UnknownRequestError
from hitl_streams.actions import Action
from hitl_streams.streams.subject_cache import SubjectCache


def test_the_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used() -> None:
    cache = SubjectCache(max_bytes=3 * (100 + 1 + 160))
    for key in "abc":
        cache.put(key, b"x" * 100)
    assert cache.get("a") == b"x" * 100  # now the most recently used
    cache.put("d", b"y" * 100)
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("d") is not None
    assert len(cache) == 3 and cache.size <= 3 * 261


def test_a_value_larger_than_the_cache_is_not_kept_and_replaces_nothing_stale() -> None:
    cache = SubjectCache(max_bytes=500)
    cache.put("a", b"small")
    cache.put("a", b"z" * 1000)
    assert cache.get("a") is None and cache.size == 0


def test_a_zero_sized_cache_keeps_nothing() -> None:
    cache = SubjectCache(max_bytes=0)
    cache.put("a", b"v")
    assert cache.get("a") is None and len(cache) == 0


def test_replacing_and_dropping_keep_the_size_exact() -> None:
    cache = SubjectCache(max_bytes=10_000)
    cache.put("a", b"1" * 10)
    cache.put("a", b"2" * 20)
    assert cache.size == 20 + 1 + 160
    cache.drop("a")
    cache.drop("missing")
    assert cache.size == 0 and len(cache) == 0


def _request(rid: str) -> NewHumanRequest:
    return NewHumanRequest(id=rid, token=f"tok-{rid}", channel="inbox", message="m", actions=[Action(id="approve")])


@pytest.fixture
async def replicas(redis: Redis, table_name: str) -> tuple[StreamState, StreamState]:
    one, two = StreamState(redis, table_name=table_name), StreamState(redis, table_name=table_name)
    await one.ensure_schema()
    await two.ensure_schema()
    return one, two


class _CountingGets:
    """Counts the GETs a state sends on its batching client (the read a cache hit saves)."""

    def __init__(self, state: StreamState) -> None:
        self.count = 0
        io = state._io
        original = io.get

        async def get(key: Any) -> Any:
            self.count += 1
            return await original(key)

        io.get = get


@pytest.mark.redis
async def test_resolving_a_request_this_process_created_needs_no_read(
    replicas: tuple[StreamState, StreamState],
) -> None:
    one, _ = replicas
    await one.create(_request("a"))
    gets = _CountingGets(one)
    await one.resolve("a", Resolved("a", "approve", "", {}))
    assert gets.count == 0
    record = await one.get("a")
    assert record is not None and record.status == "resolved"


@pytest.mark.redis
async def test_a_stale_guess_costs_one_read_and_the_other_replica_change_survives(
    replicas: tuple[StreamState, StreamState],
) -> None:
    one, two = replicas
    await one.create(_request("a"))
    await two.set_external_id("a", "slack-1")  # `one` still holds the bytes from before this change
    gets = _CountingGets(one)
    await one.resolve("a", Resolved("a", "approve", "", {}))
    assert gets.count == 1
    record = await two.get("a")
    assert record is not None and record.status == "resolved" and record.external_id == "slack-1"
    assert (await one.verify()).clean


@pytest.mark.redis
async def test_already_resolved_comes_from_redis_not_from_the_guess(
    replicas: tuple[StreamState, StreamState],
) -> None:
    one, two = replicas
    await one.create(_request("a"))
    await two.resolve("a", TimedOut("a", ""))  # `one` still believes "a" is pending
    with pytest.raises(AlreadyResolvedError):
        await one.resolve("a", Resolved("a", "approve", "", {}))
    record = await one.get("a")
    assert record is not None and record.result == TimedOut("a", "")


@pytest.mark.redis
async def test_a_guess_about_a_deleted_request_is_not_trusted(
    replicas: tuple[StreamState, StreamState], redis: Redis
) -> None:
    one, _ = replicas
    await one.create(_request("a"))
    await redis.delete(one.keys.req("a"))
    with pytest.raises(UnknownRequestError):
        await one.resolve("a", Resolved("a", "approve", "", {}))


@pytest.mark.redis
async def test_concurrent_resolves_across_replicas_with_warm_caches_have_one_winner(
    replicas: tuple[StreamState, StreamState], redis: Redis
) -> None:
    one, two = replicas
    for i in range(20):
        rid = f"r{i}"
        await one.create(_request(rid))
        assert await two.get(rid) is not None  # both replicas now hold the pending bytes
        outcomes = await asyncio.gather(
            *(s.resolve(rid, Resolved(rid, "approve", "", {})) for s in (one, two, one, two)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 1
        assert all(isinstance(o, AlreadyResolvedError) for o in outcomes if o is not None)
    entries = await redis.xrange(one.keys.events)
    assert sum(b'"request.resolved"' in fields[b"event"] for _, fields in entries) == 20


@pytest.mark.redis
async def test_subject_cache_bytes_zero_turns_the_guess_off(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name, subject_cache_bytes=0)
    await state.create(_request("a"))
    gets = _CountingGets(state)
    await state.resolve("a", Resolved("a", "approve", "", {}))
    assert gets.count == 1


@pytest.mark.redis
async def test_a_request_restored_to_pending_is_judged_by_what_redis_holds(
    replicas: tuple[StreamState, StreamState], redis: Redis
) -> None:
    """`one` saw the request resolved; an operator then restored the pending record (a backup). Whether it
    can be resolved is decided by Redis, not by what `one` remembers."""
    one, _ = replicas
    await one.create(_request("a"))
    pending = await redis.get(one.keys.req("a"))
    await one.resolve("a", Resolved("a", "approve", "", {}))
    assert pending is not None
    await redis.set(one.keys.req("a"), pending)
    await one.resolve("a", TimedOut("a", ""))
    record = await one.get("a")
    assert record is not None and record.result == TimedOut("a", "")
