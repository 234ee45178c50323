"""bulk.NetOps gives the same keys as running every projection write in order; run_commands answers in
order through the batching connection and through a plain redis-py pipeline alike."""

from __future__ import annotations

import random
from typing import Any

import pytest
from redis.asyncio import Redis

from hitl_streams.history.projection import Op
from hitl_streams.streams.bulk import NetOps, run_commands, send_commands
from hitl_streams.streams.replay import _op_commands, read_value

pytestmark = pytest.mark.redis


def _random_ops(rng: random.Random, prefix: str, events: int) -> list[tuple[list[Op], str]]:
    out: list[tuple[list[Op], str]] = []
    for n in range(events):
        ops: list[Op] = []
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice("SZRAPH")
            key = f"{prefix}:{kind if kind != 'R' else 'Z'}{rng.randint(0, 3)}"
            member = f"m{rng.randint(0, 9)}"
            if kind == "S":
                ops.append(("S", key, (f"v{rng.randint(0, 99)}".encode(),)))
                if rng.random() < 0.4:  # a deadline (a past one deletes the key), as links and sessions have
                    deadline = 4_000_000_000_000 + rng.randint(0, 3) if rng.random() < 0.8 else 1_000
                    ops.append(("E", key, (str(deadline),)))
            elif kind == "Z":
                ops.append(("Z", key, (str(rng.randint(0, 5)), member)))
            elif kind == "R":
                ops.append(("R", key, (member,)))
            elif kind == "A":
                ops.append(("A", key, (member,)))
            elif kind == "H":
                ops.append(("H", key, (f"f{rng.randint(0, 4)}",)))
            else:
                ops.append(("P", key, ()))
        out.append((ops, f"{n + 1}-0"))
    return out


def _rename(ops: list[tuple[list[Op], str]], old: str, new: str) -> list[tuple[list[Op], str]]:
    return [([(c, new + k[len(old) :], a) for c, k, a in o], p) for o, p in ops]


class _OwnRedis(Redis):
    pass


@pytest.mark.parametrize("seed", range(6))
async def test_net_effect_equals_writes_in_order(redis: Redis, table_name: str, seed: int) -> None:
    rng = random.Random(seed)
    base = table_name
    events = _random_ops(rng, f"{base}:seq", 300)
    # In order, one command per write.
    _ = await run_commands(redis, [cmd for ops, pos in events for cmd in _op_commands(ops, pos)])  # type: ignore[arg-type]
    # Folded, in batches of random size, each batch one NetOps.
    folded = _rename(events, f"{base}:seq", f"{base}:net")
    i = 0
    while i < len(folded):
        size = rng.randint(1, 60)
        net = NetOps()
        for ops, pos in folded[i : i + size]:
            net.add(ops, pos)
        replies = await run_commands(redis, net.commands())
        assert not [r for r in replies if isinstance(r, Exception)]
        i += size
    names = sorted({k for ops, _ in events for _, k, _ in ops})
    twins = [f"{base}:net" + n[len(f"{base}:seq") :] for n in names]
    assert await read_value(redis, names) == await read_value(redis, twins)
    deadlines = [await redis.execute_command("PEXPIRETIME", n) for n in names]
    assert deadlines == [await redis.execute_command("PEXPIRETIME", t) for t in twins]
    assert any(d > 0 for d in deadlines)


def test_a_key_written_as_two_types_is_refused() -> None:
    net = NetOps()
    net.add([("S", "k", (b"v",)), ("Z", "k", ("1", "m"))], "1-0")
    with pytest.raises(TypeError):
        net.commands()


async def test_run_commands_through_a_plain_pipeline(redis_url: str, table_name: str) -> None:
    client: Any = _OwnRedis.from_url(redis_url)  # not a plain Redis: not batched, redis-py's pipeline instead
    try:
        replies = await run_commands(client, [("SET", f"{table_name}:a", "1"), ("ZCARD", f"{table_name}:a")])
        assert replies[0] is True or replies[0] in (b"OK", "OK")
        assert isinstance(replies[1], Exception) and "WRONGTYPE" in str(replies[1])
    finally:
        await client.delete(f"{table_name}:a")
        await client.aclose()


@pytest.mark.parametrize("batched", [True, False])
async def test_groups_sent_before_any_reply_run_in_the_order_sent(
    redis_url: str, table_name: str, batched: bool
) -> None:
    client: Any = Redis.from_url(redis_url) if batched else _OwnRedis.from_url(redis_url)
    key = f"{table_name}:order"
    try:
        first = await send_commands(client, [("SET", key, "1"), ("GET", key)])
        second = await send_commands(client, [("SET", key, "2"), ("GET", key)])
        empty = await send_commands(client, [])
        assert (await second)[1] == b"2"  # awaited first, answered as sent
        assert (await first)[1] == b"1"
        assert await empty == []
    finally:
        await client.delete(key)
        await client.aclose()
