"""The worker process is killed (SIGKILL) mid-wait, the decision is made while no worker runs, and a new
worker process resumes the workflow from its history: the decision is delivered, and the history
replays deterministically.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from engine_support import SECRET, die_with_parent, pending_requests, served
from temporal_workflows import WORKFLOWS, AskWorkflow
from temporalio.client import Client
from temporalio.worker import Replayer

from hitl_streams import Hitl, InMemoryState
from hitl_streams.temporal import TemporalResolver

HERE = Path(__file__).parent


@asynccontextmanager
async def worker_process(address: str, task_queue: str, url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`temporal_worker.py` in a child process, configured through its environment like a deployment."""
    env = {
        **os.environ,
        "HITL_URL": url,
        "HITL_SECRET": SECRET,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "temporal_worker.py"),
        address,
        task_queue,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert line == b"ready\n", f"the worker did not start (exit code {process.returncode})"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_worker_killed_mid_wait_then_restarted(temporal_address: str) -> None:
    client = await Client.connect(temporal_address)
    hitl = Hitl(InMemoryState(), resolver=TemporalResolver(client), secret=SECRET)
    task_queue = f"hitl-crash-{uuid.uuid4().hex[:8]}"
    async with served(hitl) as url:
        async with worker_process(temporal_address, task_queue, url) as first:
            handle = await client.start_workflow(
                AskWorkflow, {"timeout": "1h"}, id=f"hitl-crash-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            [request] = await pending_requests(hitl)
            os.kill(first.pid, signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL

        # No worker runs now: the decision is recorded, and the resolver's signal lands in the history.
        await hitl.inbox.resolve(request.id, action_id="deny", feedbacks={"reason": "not while it is down"})
        async with asyncio.timeout(60):
            while True:
                events = (await handle.fetch_history()).events
                if any(event.HasField("workflow_execution_signaled_event_attributes") for event in events):
                    break
                await asyncio.sleep(0.2)

        async with worker_process(temporal_address, task_queue, url):
            result = await asyncio.wait_for(handle.result(), 120)
    assert (result["type"], result["id"], result["actionId"]) == ("RESOLVED", request.id, "deny")
    assert result["feedbacks"] == {"reason": "not while it is down"}
    await Replayer(workflows=WORKFLOWS).replay_workflow(await handle.fetch_history())
