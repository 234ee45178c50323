"""`hitl-streams serve --temporal-address`: the served API resumes Temporal workflows.

The server runs as a user runs it (a child process on a Redis, with the stream-driven resumer); the
decision is recorded by another `Hitl` on the same Redis, as a second replica's inbox would, and the
serving process signals the workflow.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio
from engine_support import SECRET, pending_requests, served_by_cli
from temporal_workflows import WORKFLOWS, AskWorkflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from hitl_streams import Hitl, Resolved, ResumeRejected, StreamState
from hitl_streams.temporal import TemporalResolver, encode_hitl_token, hitl_activities
from hitl_streams.testing.redis_server import free_port


async def test_serve_resumes_temporal_workflows(temporal_address: str, redis_url: str, table_name: str) -> None:
    client = await Client.connect(temporal_address)
    args = ["--redis-url", redis_url, "--table", table_name, "--temporal-address", temporal_address]
    async with served_by_cli(*args) as url:
        connection = redis.asyncio.Redis.from_url(redis_url)
        inbox = Hitl(StreamState(connection, table_name=table_name), secret=SECRET)
        task_queue = f"hitl-serve-{uuid.uuid4().hex[:8]}"
        async with Worker(
            client, task_queue=task_queue, workflows=WORKFLOWS, activities=hitl_activities(url=url, secret=SECRET)
        ):
            handle = await client.start_workflow(
                AskWorkflow, {"message": "Via serve?"}, id=f"hitl-serve-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            [request] = await pending_requests(inbox)
            await inbox.inbox.resolve(request.id, action_id="deny", feedbacks={"reason": "replica two says no"})
            result = await handle.result()
        await connection.aclose()
    assert (result["type"], result["id"], result["actionId"]) == ("RESOLVED", request.id, "deny")
    assert result["feedbacks"] == {"reason": "replica two says no"}


def test_serve_refuses_a_namespace_that_does_not_exist(temporal_address: str, tmp_path: Path) -> None:
    cli = str(Path(sys.executable).parent / "hitl-streams")
    done = subprocess.run(
        [
            cli,
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
            "--temporal-address",
            temporal_address,
            "--temporal-namespace",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert (
        done.stderr.strip()
        == f"hitl-streams: error: the Temporal namespace 'nope' does not exist at {temporal_address}"
    )


async def test_a_missing_namespace_is_retried_not_rejected(temporal_address: str) -> None:
    resolver = TemporalResolver(await Client.connect(temporal_address, namespace="nope"))
    result = Resolved(id="r1", action_id="approve", external_ref="", feedbacks={})
    with pytest.raises(RPCError, match="Namespace nope is not found") as caught:
        await resolver.resolve(encode_hitl_token("wf", "hitl-wait-1"), result)
    assert not isinstance(caught.value, ResumeRejected)
