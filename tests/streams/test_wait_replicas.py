"""`StreamState(wait_replicas=N)`: every write waits for N replicas (`WAIT`) and fails loudly when fewer
acknowledge it; on a real primary with a real replica (`REPLICAOF`), standalone and in a cluster."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis, RedisCluster

from hitl_streams import StreamState
from hitl_streams.actions import Action
from hitl_streams.errors import NotReplicatedError
from hitl_streams.records import NewHumanRequest
from hitl_streams.results import Resolved
from hitl_streams.testing._servers import ServerProcess, resp_command
from hitl_streams.testing.cluster import LocalCluster


def _replication(port: int) -> dict[str, str]:
    raw = resp_command(port, "INFO", "replication").decode()
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    primary = ServerProcess(
        ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"], name="primary"
    ).start()
    replica = ServerProcess(["--save", "", "--appendonly", "no"], name="replica").start()
    try:
        resp_command(replica.port, "REPLICAOF", "127.0.0.1", str(primary.port))
        deadline = time.monotonic() + 15
        while _replication(replica.port).get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def _request(token: str) -> NewHumanRequest:
    return NewHumanRequest(
        id=str(uuid.uuid4()), token=token, channel="inbox", message="m", actions=[Action(id="approve")]
    )


async def test_writes_wait_for_the_replica_and_fail_without_it(
    primary_and_replica: tuple[ServerProcess, ServerProcess],
) -> None:
    primary, replica = primary_and_replica
    client, on_replica = Redis.from_url(primary.url), Redis.from_url(replica.url)
    state = StreamState(client, table_name="w.human_requests", wait_replicas=1, wait_timeout_ms=2000)
    try:
        record = _request("tok")
        await state.create(record)
        # Acknowledged means on the replica too, at the moment the call returns.
        assert await on_replica.exists(state.keys.req(record.id)) == 1
        await state.resolve(record.id, Resolved(id=record.id, action_id="approve", external_ref="", feedbacks={}))
        assert await on_replica.xlen(state.keys.events) == await client.xlen(state.keys.events)

        replica.kill()
        impatient = StreamState(client, table_name="w.human_requests", wait_replicas=1, wait_timeout_ms=200)
        with pytest.raises(NotReplicatedError, match="only 0 of 1 replica"):
            await impatient.create(_request("tok2"))
        # Without the option nothing waits (what is guaranteed then: see the README's Reliability section).
        await StreamState(client, table_name="w.human_requests").create(_request("tok3"))
    finally:
        await client.aclose()
        await on_replica.aclose()


def test_the_options_are_checked() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        StreamState(object(), wait_replicas=-1)


@pytest.mark.slow
async def test_writes_wait_for_the_replica_in_a_cluster() -> None:
    with LocalCluster(masters=3, replicas=1) as cluster:
        client = RedisCluster(startup_nodes=cluster.startup_nodes)
        try:
            state = StreamState(
                client, table_name="wc.human_requests", cluster=True, wait_replicas=1, wait_timeout_ms=2000
            )
            record = _request("tok")
            await state.create(record)
            assert (await state.get(record.id)) is not None
            with pytest.raises(NotReplicatedError):
                await StreamState(
                    client, table_name="wc.human_requests", cluster=True, wait_replicas=2, wait_timeout_ms=100
                ).create(_request("tok2"))
        finally:
            await client.aclose()
