"""A Temporal worker in its own process, for the crash test: `python temporal_worker.py ADDRESS TASK_QUEUE`.

It registers `ACTIVITIES` as they are, so the activity reads `HITL_URL` and `HITL_SECRET` from this
process's environment (the deployment path the README describes). Prints `ready` once polling.
"""

from __future__ import annotations

import asyncio
import sys

from temporal_workflows import WORKFLOWS
from temporalio.client import Client
from temporalio.worker import Worker

from hitl_streams.temporal import ACTIVITIES


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
