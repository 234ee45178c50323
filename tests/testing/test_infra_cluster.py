"""The local Redis Cluster: real nodes, real slots, single-slot scripts work, cross-slot ones do not."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import RedisCluster
from redis.exceptions import RedisClusterException, ResponseError

from hitl_streams.testing._servers import resp_command
from hitl_streams.testing.cluster import LocalCluster

# The infra fixtures, until the hitl_streams plugin registers them; then this line can go.

pytestmark = pytest.mark.cluster


def node_of(client: RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)
    assert node is not None
    return node.name


SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
return {redis.call('GET', KEYS[1]), redis.call('LLEN', KEYS[2])}
"""


async def test_the_cluster_is_up_with_three_masters(
    redis_cluster: LocalCluster, redis_cluster_client: RedisCluster
) -> None:
    assert len(redis_cluster.ports) == len(set(redis_cluster.ports))
    print(f"cluster of {len(redis_cluster.nodes)} nodes started in {redis_cluster.start_seconds:.2f}s")
    assert redis_cluster.start_seconds < 30
    for port in redis_cluster.ports:
        info = resp_command(port, "CLUSTER", "INFO")
        assert b"cluster_state:ok" in info
        assert b"cluster_slots_assigned:16384" in info
    await redis_cluster_client.initialize()
    assert len(redis_cluster_client.get_primaries()) == 3
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.ports[0]}"


async def test_eval_on_keys_sharing_one_hash_tag_runs(redis_cluster_client: RedisCluster) -> None:
    run = uuid.uuid4().hex
    keys = [f"{{t}}:{run}:value", f"{{t}}:{run}:list"]
    assert await redis_cluster_client.execute_command("EVAL", SCRIPT, 2, *keys, "v1") == [b"v1", 1]
    sha = await redis_cluster_client.script_load(SCRIPT)
    assert await redis_cluster_client.execute_command("EVALSHA", sha, 2, *keys, "v2") == [b"v2", 2]
    slots = {await redis_cluster_client.cluster_keyslot(key) for key in keys}
    assert slots == {await redis_cluster_client.cluster_keyslot("t")}


async def test_keys_without_a_tag_spread_over_slots_and_nodes(redis_cluster_client: RedisCluster) -> None:
    run = uuid.uuid4().hex
    keys = [f"{run}:{i}" for i in range(30)]
    await redis_cluster_client.initialize()
    slots = {await redis_cluster_client.cluster_keyslot(key) for key in keys}
    nodes = {node_of(redis_cluster_client, key) for key in keys}
    assert len(slots) > 20
    assert len(nodes) == 3
    one_per_node = {node_of(redis_cluster_client, key): key for key in keys}
    first, other = list(one_per_node.values())[:2]
    with pytest.raises((RedisClusterException, ResponseError), match=r"(?i)slot"):
        await redis_cluster_client.execute_command("EVAL", SCRIPT, 2, first, other, "v")


def test_a_cluster_with_replicas_comes_up_and_goes_away() -> None:
    with LocalCluster(masters=3, replicas=1) as cluster:
        print(f"3 masters + 3 replicas started in {cluster.start_seconds:.2f}s")
        ports = cluster.ports
        nodes = resp_command(ports[0], "CLUSTER", "NODES").decode().splitlines()
        assert sum("master" in line for line in nodes) == 3
        assert sum("slave" in line for line in nodes) == 3
    for port in ports:
        with pytest.raises(OSError):
            resp_command(port, "PING")
