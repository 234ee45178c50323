"""Workflows of the Temporal binding tests (a module of its own: the sandbox re-imports it)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import msgspec

    from hitl_streams.client import BatchItem, HumanResult, Pending, escalate, remind
    from hitl_streams.temporal import temporal_hitl_client

ACTIONS: list[dict[str, Any]] = [
    {"id": "approve", "label": "Approve", "fields": {"note": {"kind": "text", "label": "Note", "default": "ok"}}},
    {"id": "deny", "label": "Deny", "fields": {"reason": {"kind": "text", "label": "Reason"}}},
]


@workflow.defn
class AskWorkflow:
    """Asks one question; `options` may set `timeout`, `remind_after`, `escalate_after` (to channel `ops`)."""

    @workflow.run
    async def run(self, options: dict[str, Any]) -> dict[str, Any]:
        hitl = temporal_hitl_client()
        reminders: list[Any] = []
        if "remind_after" in options:
            reminders.append(remind.after(options["remind_after"], message="Still waiting on you"))
        if "escalate_after" in options:
            reminders.append(escalate.to("ops").after(options["escalate_after"], message="Escalated to ops"))
        result = await hitl.wait_for_human(
            message=options.get("message", "Ship it?"),
            actions=ACTIONS,
            context={"workflow": workflow.info().workflow_id},
            timeout=options.get("timeout"),
            reminders=reminders,
        )
        answer: dict[str, Any] = msgspec.to_builtins(result)
        return answer


@workflow.defn
class BatchWorkflow:
    """Asks about every item of `options["items"]` in one batch."""

    @workflow.run
    async def run(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        hitl = temporal_hitl_client()
        results = await hitl.wait_for_human(
            message="Review these",
            actions=ACTIONS,
            items=[BatchItem(message=text) for text in options["items"]],
            timeout=options.get("timeout"),
        )
        answers: list[dict[str, Any]] = msgspec.to_builtins(results)
        return answers


@workflow.defn
class TwoStepWorkflow:
    """Creates a request, then waits on it in a second step (the `request_human` / `wait_for_human` split)."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        hitl = temporal_hitl_client()
        pending = await hitl.request_human(message="Deploy?", actions=ACTIONS)
        await hitl.notify(message="a deploy is waiting for approval", after=pending)
        result = await hitl.wait_for_human(pending)
        answer: dict[str, Any] = msgspec.to_builtins(result)
        return answer


WORKFLOWS: list[type] = [AskWorkflow, BatchWorkflow, TwoStepWorkflow]


@workflow.defn
class ReloadedPendingWorkflow:
    """Stores its `Pending` as JSON, then waits on the reloaded copy through a second client object."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        pending = await temporal_hitl_client().request_human(message="Later?", actions=ACTIONS)
        stored = msgspec.json.encode(pending)
        reloaded = msgspec.json.decode(stored, type=Pending[HumanResult])
        result = await temporal_hitl_client().wait_for_human(reloaded, timeout="1h")
        answer: dict[str, Any] = msgspec.to_builtins(result)
        return answer


WORKFLOWS.append(ReloadedPendingWorkflow)
