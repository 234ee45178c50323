"""Workflows of the DBOS binding tests (also run by `dbos_app.py` in its own process)."""

from __future__ import annotations

from typing import Any

import msgspec
from dbos import DBOS

from hitl_streams.client import BatchItem, HumanResult, Pending, escalate, remind
from hitl_streams.dbos import dbos_hitl_client

ACTIONS: list[dict[str, Any]] = [
    {"id": "approve", "label": "Approve", "fields": {"note": {"kind": "text", "label": "Note", "default": "ok"}}},
    {"id": "deny", "label": "Deny", "fields": {"reason": {"kind": "text", "label": "Reason"}}},
]


@DBOS.workflow(name="hitl-test-ask")
async def ask(options: dict[str, Any]) -> dict[str, Any]:
    """Asks one question; `options` may set `timeout`, `remind_after`, `escalate_after` (to channel `ops`)."""
    hitl = dbos_hitl_client()
    reminders: list[Any] = []
    if "remind_after" in options:
        reminders.append(remind.after(options["remind_after"], message="Still waiting on you"))
    if "escalate_after" in options:
        reminders.append(escalate.to("ops").after(options["escalate_after"], message="Escalated to ops"))
    result = await hitl.wait_for_human(
        message=options.get("message", "Ship it?"),
        actions=ACTIONS,
        context={"workflow": DBOS.workflow_id},
        timeout=options.get("timeout"),
        reminders=reminders,
    )
    answer: dict[str, Any] = msgspec.to_builtins(result)
    return answer


@DBOS.workflow(name="hitl-test-batch")
async def batch(options: dict[str, Any]) -> list[dict[str, Any]]:
    """Asks about every item of `options["items"]` in one batch."""
    hitl = dbos_hitl_client()
    results = await hitl.wait_for_human(
        message="Review these",
        actions=ACTIONS,
        items=[BatchItem(message=text) for text in options["items"]],
        timeout=options.get("timeout"),
    )
    answers: list[dict[str, Any]] = msgspec.to_builtins(results)
    return answers


@DBOS.workflow(name="hitl-test-two-step")
async def two_step() -> dict[str, Any]:
    """Creates a request, notifies under it, then waits on it."""
    hitl = dbos_hitl_client()
    pending = await hitl.request_human(message="Deploy?", actions=ACTIONS)
    await hitl.notify(message="a deploy is waiting for approval", after=pending)
    result = await hitl.wait_for_human(pending)
    answer: dict[str, Any] = msgspec.to_builtins(result)
    return answer


@DBOS.workflow(name="hitl-test-reloaded-pending")
async def reloaded_pending() -> dict[str, Any]:
    """Stores its `Pending` as JSON, then waits on the reloaded copy through a second client object."""
    pending = await dbos_hitl_client().request_human(message="Later?", actions=ACTIONS)
    reloaded = msgspec.json.decode(msgspec.json.encode(pending), type=Pending[HumanResult])
    result = await dbos_hitl_client().wait_for_human(reloaded, timeout="1h")
    answer: dict[str, Any] = msgspec.to_builtins(result)
    return answer


@DBOS.workflow(name="hitl-test-two-clients")
async def two_clients() -> list[dict[str, Any]]:
    """Two client objects in one workflow, each asking its own question."""
    first = await dbos_hitl_client().request_human(message="First?", actions=ACTIONS)
    second = await dbos_hitl_client().request_human(message="Second?", actions=ACTIONS)
    results = [await dbos_hitl_client().wait_for_human(p) for p in (first, second)]
    answers: list[dict[str, Any]] = msgspec.to_builtins(results)
    return answers
