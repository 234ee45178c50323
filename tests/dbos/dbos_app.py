"""A DBOS application in its own process, for the restart test.

`python dbos_app.py DATABASE_URL start WORKFLOW_ID` launches DBOS, starts the `ask` workflow under that
id and prints `started`; `python dbos_app.py DATABASE_URL recover WORKFLOW_ID` launches DBOS (which
recovers the workflow that was running when the last process died), waits for its result and prints it
as JSON. The hitl server URL and secret come from `HITL_URL` and `HITL_SECRET`.
"""

from __future__ import annotations

import asyncio
import json
import sys

import dbos_workflows
from dbos import DBOS, SetWorkflowID


async def main(database_url: str, mode: str, workflow_id: str) -> None:
    DBOS(config={"name": "hitl-streams-restart", "system_database_url": database_url, "run_admin_server": False})
    DBOS.launch()
    if mode == "start":
        with SetWorkflowID(workflow_id):
            await DBOS.start_workflow_async(dbos_workflows.ask, {"message": "Restart-proof?", "timeout": "1h"})
        print("started", flush=True)
        await asyncio.Event().wait()
    handle = await DBOS.retrieve_workflow_async(workflow_id)
    print(json.dumps(await handle.get_result()), flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
