"""The DBOS process is killed (SIGKILL) mid-wait, the decision is sent while it is down, and a new DBOS
process recovers the workflow on launch and resumes it with the decision.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

from engine_support import SECRET, die_with_parent, pending_requests, resumed, served

from hitl_streams import Hitl, InMemoryState
from hitl_streams.dbos import DBOSResolver

HERE = Path(__file__).parent


async def dbos_process(database_url: str, mode: str, workflow_id: str, url: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HITL_URL": url,
        "HITL_SECRET": SECRET,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "dbos_app.py"),
        database_url,
        mode,
        workflow_id,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )


async def test_dbos_process_killed_mid_wait_then_recovered(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'restart.sqlite'}"
    workflow_id = f"hitl-restart-{uuid.uuid4().hex[:8]}"
    resolver = DBOSResolver(database_url)
    hitl = Hitl(InMemoryState(), resolver=resolver, secret=SECRET)
    async with served(hitl) as url:
        first = await dbos_process(database_url, "start", workflow_id, url)
        try:
            assert first.stdout is not None
            assert await asyncio.wait_for(first.stdout.readline(), 120) == b"started\n"
            [request] = await pending_requests(hitl, within=120)
            assert json.loads(request.token)["workflowId"] == workflow_id
        finally:
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL

        # The app is down: the decision goes into its system database, where the recovered workflow finds it.
        await hitl.inbox.resolve(request.id, action_id="approve", feedbacks={"note": "after the crash"})
        await resumed(hitl, request.id)

        second = await dbos_process(database_url, "recover", workflow_id, url)
        try:
            assert second.stdout is not None
            line = await asyncio.wait_for(second.stdout.readline(), 120)
        finally:
            if second.returncode is None:
                second.kill()
            await second.wait()
    await resolver.close()
    result = json.loads(line)
    assert (result["type"], result["id"], result["actionId"]) == ("RESOLVED", request.id, "approve")
    assert result["feedbacks"] == {"note": "after the crash"}
    # One request: the recovered workflow went on from its recorded steps with the same resume token.
    assert (await hitl.inbox.count()) == 1
