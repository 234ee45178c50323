"""The commit script on its own: every op kind, repeated keys, guards, op ids, and a key of the wrong type
stopping the write before anything is written."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hitl_streams.history.keys import Keys, table_prefix
from hitl_streams.history.projection import Ops
from hitl_streams.streams.scripts import OP_TTL_SECONDS, Guard, as_eval, commit_command, commit_outcome
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis


@pytest.fixture
def keys(table_name: str) -> Keys:
    return Keys(table_prefix(table_name))


async def commit(redis: Redis, keys: Keys, op_id: str, ops: Ops, guards: tuple[Guard, ...] = ()) -> tuple[int, str]:
    command = commit_command(keys.events, keys.ops(1), keys.meta_pause, op_id, b'{"e":1}', guards, ops)
    return commit_outcome(await redis.execute_command(*as_eval(command)))  # type: ignore[no-untyped-call]


def every_kind(keys: Keys) -> Ops:
    p = keys.prefix
    ops = Ops()
    ops.set(f"{p}:s", b"v")
    ops.expire_at(f"{p}:s", 4_102_444_800_000)
    ops.zadd(f"{p}:z", 5, "m")
    ops.zadd(f"{p}:z", 6, "n")
    ops.zrem(f"{p}:z", "m")
    ops.sadd(f"{p}:a", "x")
    ops.push_position(f"{p}:l")
    ops.push_position_to_field(f"{p}:h", "f")
    ops.push_position_to_field(f"{p}:h", "f")  # twice in one write: both positions kept
    ops.push_position_to_field(f"{p}:h", "g")
    return ops


async def test_every_op_kind_is_applied_and_the_op_id_recorded(redis: Redis, keys: Keys) -> None:
    p = keys.prefix
    await redis.hset(f"{p}:h", "f", "0-1")
    status, position = await commit(redis, keys, "op1", every_kind(keys))
    assert status == 1
    assert await redis.get(f"{p}:s") == b"v" and await redis.pttl(f"{p}:s") > 0
    assert await redis.zrange(f"{p}:z", 0, -1, withscores=True) == [(b"n", 6.0)]
    assert await redis.smembers(f"{p}:a") == {b"x"}
    assert await redis.lrange(f"{p}:l", 0, -1) == [position.encode()]
    assert await redis.hgetall(f"{p}:h") == {b"f": f"0-1 {position} {position}".encode(), b"g": position.encode()}
    assert await redis.hget(keys.ops(1), "op1") == position.encode()
    assert 0 < await redis.ttl(keys.ops(1)) <= OP_TTL_SECONDS
    assert await commit(redis, keys, "op1", every_kind(keys)) == (2, position)  # a retry: the first outcome
    assert await redis.xlen(keys.events) == 1


async def test_guards_are_numbered_from_one_and_the_pause_is_zero(redis: Redis, keys: Keys) -> None:
    p = keys.prefix
    await redis.set(f"{p}:taken", "x")
    await redis.set(f"{p}:cas", "old")
    ops = Ops()
    ops.set(f"{p}:s", b"v")
    guards = (Guard("nx", f"{p}:free"), Guard("eq", f"{p}:cas", b"old"), Guard("nx", f"{p}:taken"))
    assert await commit(redis, keys, "a", ops, guards) == (0, "3")
    assert await commit(redis, keys, "b", ops, (Guard("eq", f"{p}:cas", b"new"),)) == (0, "1")
    await redis.set(keys.meta_pause, "1")
    assert await commit(redis, keys, "c", ops, guards[:2]) == (0, "0")
    await redis.delete(keys.meta_pause)
    assert (await commit(redis, keys, "d", ops, guards[:2]))[0] == 1
    assert await redis.xlen(keys.events) == 1


@pytest.mark.parametrize(("name", "expected"), [("z", "zset"), ("a", "set"), ("l", "list"), ("h", "hash")])
async def test_a_key_of_the_wrong_type_stops_the_write_before_anything_is_written(
    redis: Redis, keys: Keys, name: str, expected: str
) -> None:
    await redis.set(f"{keys.prefix}:{name}", "a string where the projection keeps a " + expected)
    before = await snapshot(redis, keys)
    with pytest.raises(ResponseError, match=f"WRONGTYPE hitl: .*:{name} is a string, expected {expected}"):
        await commit(redis, keys, "op1", every_kind(keys))
    assert await redis.xlen(keys.events) == 0
    assert await redis.hget(keys.ops(1), "op1") is None
    assert await snapshot(redis, keys) == before


async def test_a_set_replaces_a_key_of_any_type(redis: Redis, keys: Keys) -> None:
    await redis.sadd(f"{keys.prefix}:s", "damaged")
    ops = Ops()
    ops.set(f"{keys.prefix}:s", b"v")
    assert (await commit(redis, keys, "op1", ops))[0] == 1
    assert await redis.get(f"{keys.prefix}:s") == b"v"


async def test_a_second_event_and_lease_ops_ride_in_one_call(redis: Redis, keys: Keys) -> None:
    """ "X" appends one more event (the "P"/"H" after it name its id), "L" sets a lease with a TTL, "U"
    deletes a lease only when it holds the token; the reply and the op id name the first event."""
    p = keys.prefix
    await redis.set(f"{p}:lease:theirs", "t2")
    ops = Ops()
    ops.push_position(f"{p}:l")
    ops.push_position_to_field(f"{p}:h", "f")
    ops.items.append(("X", keys.events, (b'{"e":2}',)))
    ops.push_position(f"{p}:l")
    ops.push_position_to_field(f"{p}:h", "f")
    ops.items += [
        ("L", f"{p}:lease:new", ("t1", "30000")),
        ("U", f"{p}:lease:theirs", ("t1",)),  # not ours: kept
    ]
    status, first = await commit(redis, keys, "op1", ops)
    assert status == 1
    rows: Any = await redis.xrange(keys.events)
    assert [(r[0].decode(), r[1][b"event"]) for r in rows] == [(first, b'{"e":1}'), (rows[1][0].decode(), b'{"e":2}')]
    second = rows[1][0].decode()
    assert await redis.lrange(f"{p}:l", 0, -1) == [first.encode(), second.encode()]
    assert await redis.hget(f"{p}:h", "f") == f"{first} {second}".encode()
    assert await redis.get(f"{p}:lease:new") == b"t1" and 0 < await redis.pttl(f"{p}:lease:new") <= 30000
    assert await redis.get(f"{p}:lease:theirs") == b"t2"
    assert await redis.hget(keys.ops(1), "op1") == first.encode()
    give_back = Ops()
    give_back.items.append(("U", f"{p}:lease:new", ("t1",)))
    assert (await commit(redis, keys, "op2", give_back))[0] == 1
    assert await redis.exists(f"{p}:lease:new") == 0


def repeated_members(keys: Keys) -> Ops:
    p = keys.prefix
    ops = Ops()
    ops.zadd(f"{p}:z1", 5, "m")
    ops.zadd(f"{p}:z2", 5, "m")  # "z": the last "Z"'s score and member
    ops.zrem(f"{p}:z3", "m")  # "r": the last member
    ops.zadd(f"{p}:z4", 6, "m")  # "Z": another score
    ops.zrem(f"{p}:z1", "n")  # "R": another member
    ops.zadd(f"{p}:z5", 6, "m")  # "z": the last "Z"'s, not the last member
    ops.zrem(f"{p}:z2", "n")  # "r": the "R"'s member
    ops.push_position_to_field(f"{p}:h", "n")  # "h": the last member as the field
    ops.push_position_to_field(f"{p}:h", "m")  # "H"
    return ops


async def test_a_repeated_score_and_member_travel_once(redis: Redis, keys: Keys) -> None:
    """A projection names one request's id in every index it moves: the command sends it once ("z", "r",
    "h" reuse the arguments the script tracked), and the writes are those of the plain ops."""
    p = keys.prefix
    await redis.zadd(f"{p}:z1", {"n": 1})
    await redis.zadd(f"{p}:z2", {"n": 1})
    await redis.zadd(f"{p}:z3", {"m": 1, "o": 2})
    command = commit_command(keys.events, keys.ops(1), keys.meta_pause, "op1", b"{}", (), repeated_members(keys))
    codes_at = 3 + int(command[2]) + 3
    assert command[codes_at] == "ZzrZRzrhH"
    assert command[codes_at + 1 :] == ["5", "m", "6", "m", "n", "m"]
    status, position = await commit(redis, keys, "op1", repeated_members(keys))
    assert status == 1
    assert await redis.zrange(f"{p}:z1", 0, -1, withscores=True) == [(b"m", 5.0)]
    assert await redis.zrange(f"{p}:z2", 0, -1, withscores=True) == [(b"m", 5.0)]
    assert await redis.zrange(f"{p}:z3", 0, -1, withscores=True) == [(b"o", 2.0)]
    assert await redis.zrange(f"{p}:z4", 0, -1, withscores=True) == [(b"m", 6.0)]
    assert await redis.zrange(f"{p}:z5", 0, -1, withscores=True) == [(b"m", 6.0)]
    assert await redis.hgetall(f"{p}:h") == {b"n": position.encode(), b"m": position.encode()}


@pytest.mark.parametrize(("name", "expected"), [("z5", "zset"), ("z2", "zset"), ("h", "hash")])
async def test_a_key_of_the_wrong_type_reached_by_a_repeat_stops_the_write(
    redis: Redis, keys: Keys, name: str, expected: str
) -> None:
    await redis.set(f"{keys.prefix}:{name}", "a string")
    before = await snapshot(redis, keys)
    with pytest.raises(ResponseError, match=f"WRONGTYPE hitl: .*:{name} is a string, expected {expected}"):
        await commit(redis, keys, "op1", repeated_members(keys))
    assert await redis.xlen(keys.events) == 0
    assert await snapshot(redis, keys) == before
