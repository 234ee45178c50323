"""DBOS: a workflow asks a human for a refund approval; the hitl server resumes it through DBOS.

Runs as is (DBOS keeps its state in a SQLite file here; use a Postgres URL in production). It runs the
three parts of a deployment in one process, which in production are three: the DBOS app, the hitl
server (`hitl-streams serve --dbos-database-url ...`, which needs only the system database) and a
reviewer deciding in the inbox.
"""

import asyncio
import os
import secrets

import uvicorn
from dbos import DBOS

from hitl_streams import Hitl, actions, field, is_resolved
from hitl_streams.client import escalate, remind
from hitl_streams.dbos import DBOSResolver, dbos_hitl_client

DATABASE_URL = os.environ.get("DBOS_SYSTEM_DATABASE_URL", "sqlite:///refunds.sqlite")
DBOS(config={"name": "refunds", "system_database_url": DATABASE_URL, "run_admin_server": False})


@DBOS.workflow()
async def refund(amount: int) -> str:
    hitl = dbos_hitl_client()  # inside the workflow; URL and secret from HITL_URL and HITL_SECRET
    result = await hitl.wait_for_human(
        message=f"Refund ${amount} to order 1042?",
        actions=actions().approve().deny(fields={"reason": field.text(label="Why not?")}).build(),
        context={"order": 1042, "amount": amount},
        timeout="3d",  # durable sleeps: a restarted app recovers the workflow and waits what is left
        reminders=[remind.after("1d"), escalate.to("inbox").after("2d", message="Refund still waiting")],
    )
    if is_resolved(result, "approve"):
        return f"refunded ${amount}"
    if is_resolved(result, "deny"):
        return f"refund denied: {result.feedbacks['reason']}"
    return "nobody answered in 3 days"


async def reviewer(hitl: Hitl) -> None:
    """Stands in for a person deciding in the web inbox or a chat channel."""
    for _ in range(600):  # looks every 0.1 s, for a minute
        page = await hitl.inbox.list(status="pending")
        if page.items:
            print("reviewer sees:", page.items[0].message)
            await hitl.inbox.resolve(page.items[0].id, action_id="deny", feedbacks={"reason": "already refunded"})
            return
        await asyncio.sleep(0.1)


async def main() -> None:
    port = int(os.environ.get("HITL_PORT", "8000"))
    os.environ.setdefault("HITL_SECRET", secrets.token_urlsafe())  # the same on the server and the app
    os.environ["HITL_URL"] = f"http://127.0.0.1:{port}"
    DBOS.launch()

    # The hitl server: decisions resume workflows by a message through the DBOS system database.
    resolver = DBOSResolver(DATABASE_URL)
    hitl = Hitl(resolver=resolver)
    server = uvicorn.Server(uvicorn.Config(hitl.asgi, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no "started" event)
        await asyncio.sleep(0.05)

    review = asyncio.create_task(reviewer(hitl))
    handle = await DBOS.start_workflow_async(refund, 120)
    print(await handle.get_result())
    await review

    server.should_exit = True
    await serving
    await resolver.close()
    DBOS.destroy()


if __name__ == "__main__":
    asyncio.run(main())
