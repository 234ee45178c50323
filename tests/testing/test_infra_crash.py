"""CrashableRedis: SIGKILL loses no acknowledged write (AOF, fsync always) and restarts on the same port."""

from __future__ import annotations

import asyncio
import os

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hitl_streams.testing.crash import CrashableRedis

# The infra fixtures, until the hitl_streams plugin registers them; then this line can go.

pytestmark = pytest.mark.slow


def test_keys_survive_kill_9_and_restart(crashable_redis: CrashableRedis) -> None:
    port = crashable_redis.port
    with SyncRedis(host="127.0.0.1", port=port) as client:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        for i in range(200):
            client.set(f"k:{i}", i)
        client.xadd("stream", {"event": b'{"type":"x"}'})
        pid = crashable_redis._server.proc.pid if crashable_redis._server.proc else 0

    crashable_redis.crash()
    assert not crashable_redis.running
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped
    crashable_redis.restart()
    assert crashable_redis.port == port

    with SyncRedis(host="127.0.0.1", port=port) as client:
        assert client.dbsize() == 201
        assert [int(v or 0) for v in client.mget([f"k:{i}" for i in range(200)])] == list(range(200))
        assert client.xlen("stream") == 1
    assert crashable_redis.crashes == 1
    print(f"restart after kill -9 took {crashable_redis.restart_seconds[0] * 1000:.0f} ms")


async def test_no_acknowledged_write_is_lost_across_three_crashes_under_load(crashable_redis: CrashableRedis) -> None:
    acked = 0
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal acked
        # from_url: no client retries, so every INCR the server acknowledged is counted exactly once.
        client = Redis.from_url(crashable_redis.url)
        try:
            while not stop.is_set():
                try:
                    await client.incr("counter")
                    acked += 1
                except (RedisConnectionError, OSError):
                    await asyncio.sleep(0.005)
        finally:
            await client.aclose()

    async def until_acked(count: int) -> None:
        # Counted in writes, not seconds: on a busy machine each phase simply takes longer.
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            if acked >= count:
                return
            await asyncio.sleep(0.01)

    task = asyncio.create_task(writer())
    try:
        for _ in range(3):
            await until_acked(acked + 20)
            await crashable_redis.crash_and_restart()
        await until_acked(acked + 10)
    finally:
        stop.set()
        await task

    with SyncRedis(host="127.0.0.1", port=crashable_redis.port) as client:
        counter = int(client.get("counter") or 0)
    assert acked > 50
    # Every acknowledged INCR is durable; at most one unacknowledged one per crash also made it.
    assert acked <= counter <= acked + 3, (acked, counter)
    assert crashable_redis.crashes == 3
