"""`HealthCheck`: one probe of the state answers every poll for its TTL; failures and hangs are "down"."""

from __future__ import annotations

import asyncio

import redis.exceptions

from hitl_streams.server.health import HealthCheck


class Ping:
    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None
        self.hang = False

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error


async def test_concurrent_polls_share_one_probe_and_its_answer_is_cached() -> None:
    ping = Ping()
    health = HealthCheck(ping, ttl=60, timeout=5)
    assert await asyncio.gather(*(health.check() for _ in range(200))) == [True] * 200
    assert all([await health.check() for _ in range(50)])
    assert ping.calls == 1


async def test_a_failing_or_hanging_state_is_down_and_comes_back() -> None:
    ping = Ping()
    health = HealthCheck(ping, ttl=0, timeout=0.05)
    ping.error = redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")
    assert await health.check() is False
    ping.error = redis.exceptions.ConnectionError("refused")
    assert await health.check() is False
    ping.error, ping.hang = None, True
    assert await health.check() is False  # no answer within the timeout
    ping.hang = False
    assert await health.check() is True


async def test_a_state_without_ping_is_always_up() -> None:
    assert await HealthCheck(None).check() is True
