"""AutoBatchRedis on a real Redis: many tasks' commands share writes, each keeps its own reply and error,
scripts stay atomic, and StreamState keeps its guarantees through it (decoded replies either way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hitl_streams import AlreadyResolvedError, Resolved, State, StreamState
from hitl_streams.history.keys import table_prefix
from hitl_streams.records import NewHumanRequest
from hitl_streams.streams.autobatch import AutoBatchRedis, autobatched
from hitl_streams.testing.contract import StateContract

pytestmark = pytest.mark.redis

# INCR a counter and append the value it saw: interleaving between two scripts would show as a gap or a
# repeat in the list.
_ATOMIC = """
local n = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], n)
if ARGV[1] == 'fail' then return redis.error_reply('BOOM task ' .. ARGV[2]) end
return {n, ARGV[2]}
"""


@pytest_asyncio.fixture(params=[False, True], ids=["bytes", "decoded"])
async def client(request: pytest.FixtureRequest, redis_url: str, table_name: str) -> AsyncIterator[Redis]:
    plain: Redis = Redis.from_url(redis_url, decode_responses=request.param)
    wrapped = autobatched(plain)
    assert isinstance(wrapped, AutoBatchRedis)
    try:
        yield wrapped
    finally:
        marker = table_prefix(table_name).partition(":")[0]
        keys = [k async for k in plain.scan_iter(match=f"*{marker}*")]
        if keys:
            await plain.delete(*keys)
        await wrapped.aclose()
        await plain.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_200_tasks_get_their_own_replies_and_errors(client: Redis, table_name: str) -> None:
    counter, log = f"{table_name}:n", f"{table_name}:log"
    sha = await client.script_load(_ATOMIC)

    async def one(i: int) -> tuple[int, str]:
        reply = await client.evalsha(sha, 2, counter, log, "fail" if i % 7 == 0 else "ok", str(i))  # type: ignore[misc]
        return int(reply[0]), _text(reply[1])

    outcomes = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
    seen: list[int] = []
    for i, outcome in enumerate(outcomes):
        if i % 7 == 0:
            assert isinstance(outcome, ResponseError), outcome
            assert f"BOOM task {i}" in str(outcome)  # the error reached the caller whose script raised it
        else:
            assert not isinstance(outcome, BaseException), outcome
            n, echoed = outcome
            assert echoed == str(i)
            seen.append(n)
    # Every script ran whole and alone: the counter values are exactly 1..200, each once, in the log too.
    assert len(seen) == len(set(seen)) == 200 - len(range(0, 200, 7))
    assert [int(_text(v)) for v in await client.lrange(log, 0, -1)] == list(range(1, 201))  # type: ignore[misc]


async def test_mixed_commands_keep_their_reply_shapes(client: Redis, table_name: str) -> None:
    z = f"{table_name}:z"
    await client.zadd(z, {"a": 1, "b": 2, "c": 3})
    await client.set(f"{table_name}:s", "v")

    results = await asyncio.gather(
        client.zrevrangebyscore(z, "+inf", "-inf", start=0, num=2, withscores=True),
        client.zcard(z),
        client.get(f"{table_name}:s"),
        client.get(f"{table_name}:missing"),
        client.mget([f"{table_name}:s", f"{table_name}:missing"]),
        client.exists(f"{table_name}:s"),
        client.ping(),
    )
    rows, card, value, missing, many, exists, pong = results
    assert [(_text(m), s) for m, s in rows] == [("c", 3.0), ("b", 2.0)]  # withscores: float pairs, as redis-py
    assert card == 3 and exists == 1 and pong is True and missing is None
    assert _text(value) == "v" and [None if v is None else _text(v) for v in many] == ["v", None]


async def test_a_wrong_type_error_goes_only_to_its_caller(client: Redis, table_name: str) -> None:
    await client.set(f"{table_name}:s", "v")
    bad, good = await asyncio.gather(
        client.zcard(f"{table_name}:s"), client.get(f"{table_name}:s"), return_exceptions=True
    )
    assert isinstance(bad, ResponseError) and "WRONGTYPE" in str(bad)
    assert _text(good) == "v"


async def test_noscript_is_the_redis_py_exception(client: Redis) -> None:
    with pytest.raises(NoScriptError):
        await client.evalsha("0" * 40, 0)  # type: ignore[misc]


async def test_a_dropped_connection_falls_back_and_recovers(redis_url: str, table_name: str) -> None:
    plain: Redis = Redis.from_url(redis_url, retry=Retry(NoBackoff(), 3))  # from_url alone retries 0 times
    client = autobatched(plain)
    try:
        await _drop_and_recover(client, table_name)
    finally:
        await client.delete(f"{table_name}:s")
        await client.aclose()
        await plain.aclose()


async def _drop_and_recover(client: AutoBatchRedis, table_name: str) -> None:
    await client.set(f"{table_name}:s", "v")
    assert _text(await client.get(f"{table_name}:s")) == "v"
    link = client._link
    assert link is not None
    await client.client_kill_filter(_id=await _link_id(client))  # the server drops the batching connection
    # Whatever was in flight or comes next is answered (through redis-py's path, then a new link).
    values = await asyncio.gather(*(client.get(f"{table_name}:s") for _ in range(50)))
    assert all(_text(v) == "v" for v in values)
    values = await asyncio.gather(*(client.get(f"{table_name}:s") for _ in range(50)))
    assert all(_text(v) == "v" for v in values)
    assert client._link is not None and client._link.alive


async def test_no_reply_within_socket_timeout_fails_the_link(redis_url: str) -> None:
    # Retries 0 (from_url's default): the timed-out command raises instead of being sent again. The script
    # outlasts the timeout by a second whatever the load (it runs by the server's clock); the next command
    # waits for the server to be free again, so the new link's own checks never race a busy server.
    plain: Redis = Redis.from_url(redis_url, socket_timeout=0.5)
    patient: Redis = Redis.from_url(redis_url)  # no timeout
    client = autobatched(plain)
    spin = (
        "local t = redis.call('TIME'); local s = t[1] * 1e6 + t[2]; "
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - s > 1500000; return 1"
    )
    try:
        with pytest.raises(RedisTimeoutError):
            await client.eval(spin, 0)  # type: ignore[misc]
        assert await patient.ping() is True  # answered once the script has finished
        assert await client.ping() is True  # a new link
    finally:
        await client.aclose()
        await plain.aclose()
        await patient.aclose()


async def _link_id(client: AutoBatchRedis) -> int:
    link = client._link
    assert link is not None
    addr = link.conn._writer.get_extra_info("sockname")
    for entry in await client.client_list():
        if entry["addr"] == f"{addr[0]}:{addr[1]}":
            return int(entry["id"])
    raise AssertionError("batching connection not found in CLIENT LIST")


async def test_cancelled_callers_do_not_shift_replies(client: Redis, table_name: str) -> None:
    await client.mset({f"{table_name}:{i}": str(i) for i in range(100)})
    tasks = [asyncio.ensure_future(client.get(f"{table_name}:{i}")) for i in range(100)]
    await asyncio.sleep(0)
    for task in tasks[::3]:
        task.cancel()
    for i, task in enumerate(tasks):
        try:
            value = await task
        except asyncio.CancelledError:
            assert i % 3 == 0
            continue
        assert _text(value) == str(i)


def test_only_plain_async_clients_are_wrapped() -> None:
    plain = Redis()
    wrapped = autobatched(plain)
    assert isinstance(wrapped, AutoBatchRedis) and autobatched(wrapped) is wrapped
    other = object()
    assert autobatched(other) is other
    latin = AutoBatchRedis.wrap(Redis(encoding="latin-1"))
    assert latin._fast is False  # hiredis packs str as UTF-8: other encodings take redis-py's path
    assert AutoBatchRedis.wrap(Redis(protocol=2))._fast and AutoBatchRedis.wrap(Redis(protocol=3))._fast


# --- StreamState through the batcher ------------------------------------------------------------------
async def test_concurrent_resolves_through_the_batcher_exactly_one_wins(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    assert isinstance(state._io, AutoBatchRedis)
    ids = [f"r{i}" for i in range(40)]
    await asyncio.gather(
        *(state.create(NewHumanRequest(id=i, token=f"t-{i}", channel="c", message="m", actions=[])) for i in ids)
    )

    async def resolve(request_id: str, k: int) -> str:
        result = Resolved(id=request_id, action_id=f"a{k}", external_ref="x", feedbacks={})
        try:
            await state.resolve(request_id, result)
        except AlreadyResolvedError:
            return "lost"
        return f"a{k}"

    outcomes = await asyncio.gather(*(resolve(i, k) for i in ids for k in range(5)))
    for n, request_id in enumerate(ids):
        mine = outcomes[n * 5 : n * 5 + 5]
        winners = [o for o in mine if o != "lost"]
        assert len(winners) == 1, mine
        record = await state.get(request_id)
        assert record is not None and record.result is not None
        assert record.result.action_id == winners[0]  # type: ignore[union-attr]
        resolutions = [a for a in await state.audit(request_id) if a.event.__class__.__name__ == "RequestResolved"]
        assert len(resolutions) == 1  # one event per change
    report = await state.verify()
    assert report.clean, report.to_dict()


class TestStreamStateRESP2(StateContract):
    """The contract through the batcher on a RESP2 connection (redis-py 8 defaults to RESP3)."""

    @pytest_asyncio.fixture
    async def state(self, redis_url: str, table_name: str) -> AsyncIterator[State]:
        client: Redis = Redis.from_url(redis_url, protocol=2)
        try:
            yield StreamState(client, table_name=table_name)
        finally:
            await client.aclose()


class TestStreamStateWithoutAutobatch(StateContract):
    """The contract still holds with `autobatch=False` (every command through redis-py directly)."""

    @pytest_asyncio.fixture
    async def state(self, redis: Redis, table_name: str) -> AsyncIterator[State]:
        yield StreamState(redis, table_name=table_name, autobatch=False)


def test_the_link_is_current_only_in_its_own_running_loop(redis_url: str) -> None:
    # The link is matched to the running loop without asyncio.get_running_loop() (a getpid() per call on
    # Python 3.11): a link whose loop is not the one running here must never be used.
    client = Redis.from_url(redis_url)
    batched = AutoBatchRedis.wrap(client)

    async def use() -> bool:
        await batched.execute_command("SET", "autobatch:loops", "v")
        assert batched._link is not None
        return batched._link.current()

    async def look() -> bool:
        assert batched._link is not None
        return batched._link.current()

    first, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(use()) is True
        assert other.run_until_complete(look()) is False  # another loop: a new link would be made
        assert first.run_until_complete(look()) is True
        assert batched._link is not None and not batched._link.current()  # no loop running at all
    finally:
        first.run_until_complete(batched.aclose())
        first.run_until_complete(client.aclose())
        first.close()
        other.close()


async def test_commits_in_flight_when_the_link_drops_are_written_once(redis_url: str, table_name: str) -> None:
    """A commit takes the batching connection without execute_command (`send_now`): when that connection
    drops, each commit in flight is sent again through redis-py (its op id makes a second run a no-op),
    and every one of them is written exactly once."""
    plain: Redis = Redis.from_url(redis_url, retry=Retry(NoBackoff(), 3))
    state = StreamState(plain, table_name=table_name)
    assert isinstance(state._io, AutoBatchRedis)
    try:
        await state.create(NewHumanRequest(id="warm", token="t-warm", channel="c", message="m", actions=[]))
        link_id = await _link_id(state._io)
        creates = [
            state.create(NewHumanRequest(id=f"d{i}", token=f"t-d{i}", channel="c", message="m", actions=[]))
            for i in range(50)
        ]
        await asyncio.gather(plain.client_kill_filter(_id=link_id), *creates)
        assert await plain.xlen(state.keys.events) == 51  # one event per create, none twice
        assert all([await state.get(f"d{i}") is not None for i in range(50)])
        report = await state.verify()
        assert report.clean, report.to_dict()
    finally:
        keys = [k async for k in plain.scan_iter(match=state.keys.prefix + ":*")]
        if keys:
            await plain.delete(*keys)
        await state._io.aclose()
        await plain.aclose()
