"""The DBOS binding against a real DBOS (SQLite system database) and a real `Hitl` served by uvicorn.

The `Hitl` resumes workflows through `DBOSResolver`, which writes to the system database with a
`DBOSClient` as a separate server process would; decisions are made with `hitl.inbox.resolve`. The
workflow reads `HITL_URL` and `HITL_SECRET` from the environment, as a deployed DBOS app does.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import dbos_workflows
import pytest
from dbos import DBOS, WorkflowHandleAsync
from engine_support import SECRET, RecordingChannel, pending_requests, served, timeline_messages

from hitl_streams import BatchDecision, Hitl, InMemoryState, Resolved, Reviewer
from hitl_streams.dbos import DBOSResolver
from hitl_streams.server.channels import InboxChannel


@dataclass
class Stack:
    hitl: Hitl
    ops: RecordingChannel
    resolver: DBOSResolver


@asynccontextmanager
async def stack(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    ops = RecordingChannel()
    resolver = DBOSResolver(dbos_database_url)
    hitl = Hitl(InMemoryState(), resolver=resolver, adapters=[InboxChannel(), ops], secret=SECRET)
    async with served(hitl) as url:
        monkeypatch.setenv("HITL_URL", url)
        monkeypatch.setenv("HITL_SECRET", SECRET)
        try:
            yield Stack(hitl, ops, resolver)
        finally:
            await resolver.close()


async def timers(handle: WorkflowHandleAsync[Any]) -> list[float]:
    """The durations (seconds) of the durable sleeps the workflow recorded, in order.

    A `DBOS.sleep` step records its wake-up time; the `recv` of each wait has one too, a year away
    (its renewal deadline), which is left out.
    """
    steps = await DBOS.list_workflow_steps_async(handle.workflow_id)
    durations = [
        step["output"] - step["started_at_epoch_ms"] / 1000 for step in steps if step["function_name"] == "DBOS.sleep"
    ]
    return [d for d in durations if d < 24 * 3600]


async def http_steps(handle: WorkflowHandleAsync[Any]) -> list[str]:
    """The bodies the `hitl-request` steps recorded, in order."""
    steps = await DBOS.list_workflow_steps_async(handle.workflow_id)
    return [step["output"]["body"] for step in steps if step["function_name"] == "hitl-request"]


async def test_approve_with_an_edited_field(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(dbos_workflows.ask, {"message": "Ship v2?"})
        [request] = await pending_requests(s.hitl)
        assert request.message == "Ship v2?"
        assert request.context == {"workflow": handle.workflow_id}
        token = json.loads(request.token)
        assert token == {"workflowId": handle.workflow_id, "topic": token["topic"]}
        assert re.fullmatch(r"hitl-wait-\d+", token["topic"])
        await s.hitl.inbox.resolve(
            request.id, action_id="approve", feedbacks={"note": "go"}, by=Reviewer(id="u1", name="Ada")
        )
        result = await handle.get_result()
        assert result["type"] == "RESOLVED"
        assert (result["id"], result["actionId"], result["feedbacks"]) == (request.id, "approve", {"note": "go"})
        assert result["edited"] is True
        assert result["by"] == {"id": "u1", "name": "Ada"}


async def test_deny_with_feedback_fields(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(dbos_workflows.ask, {"timeout": "1h"})
        [request] = await pending_requests(s.hitl)
        await s.hitl.inbox.resolve(request.id, action_id="deny", feedbacks={"reason": "too risky"})
        result = await handle.get_result()
        assert (result["type"], result["actionId"]) == ("RESOLVED", "deny")
        assert result["feedbacks"] == {"reason": "too risky"}


async def test_timeout_returns_timed_out(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(dbos_workflows.ask, {"timeout": "2s"})
        [request] = await pending_requests(s.hitl)
        result = await handle.get_result()
        assert result == {"type": "TIMED_OUT", "id": request.id, "externalRef": request.external_id or ""}
        record = await s.hitl.inbox.get(request.id)
        assert record is not None and record.status == "resolved"


async def test_reminder_and_escalation_fire_on_their_timers(
    dbos_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(
            dbos_workflows.ask, {"remind_after": "1s", "escalate_after": "2s", "timeout": "3s"}
        )
        [request] = await pending_requests(s.hitl)
        result = await handle.get_result()
        assert result["type"] == "TIMED_OUT"
        messages = [entry.message for entry in await s.hitl.inbox.timeline(request.id)]
        assert messages.index("Still waiting on you") < messages.index("Escalated to ops")
        assert [n.message for n in s.ops.notifications] == ["Escalated to ops"]
        # Durable sleeps: 1s to the reminder, then to the escalation (2s) and the timeout (3s) after the
        # wait began, by the workflow's recorded clock (so shortened by the time the reminder's step took).
        # (The recorded wake-up time is computed a database read after the step's start time: hence >=.)
        first, second, third = await timers(handle)
        assert first >= 1.0 and second > 0 and third > 0
        answers = await http_steps(handle)
        assert answers[1:3] == ['{"pending":true}', '{"pending":true}']  # the reminder, then the escalation
        assert '"TIMED_OUT"' in answers[3]


async def test_decision_between_reminders_stops_them(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(
            dbos_workflows.ask, {"remind_after": "1s", "escalate_after": "1h", "timeout": "2h"}
        )
        [request] = await pending_requests(s.hitl)
        await timeline_messages(s.hitl, request.id, containing="Still waiting on you")
        await s.hitl.inbox.resolve(request.id, action_id="approve")
        result = await handle.get_result()
        assert (result["type"], result["actionId"], result["feedbacks"]) == ("RESOLVED", "approve", {"note": "ok"})
        assert s.ops.notifications == []


async def test_batch(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(dbos_workflows.batch, {"items": ["first", "second", "third"]})
        requests = await pending_requests(s.hitl, 3)
        batch_id = requests[0].batch_id
        assert batch_id is not None
        by_message = {r.message: r for r in requests}
        await s.hitl.inbox.resolve(by_message["second"].id, action_id="deny", feedbacks={"reason": "no"})
        await s.hitl.inbox.resolve_batch(
            batch_id,
            [
                BatchDecision(request_id=by_message["first"].id, action_id="approve"),
                BatchDecision(request_id=by_message["third"].id, action_id="approve", feedbacks={"note": "3"}),
            ],
        )
        results = await handle.get_result()
        assert [(r["id"], r["actionId"]) for r in results] == [
            (by_message["first"].id, "approve"),
            (by_message["second"].id, "deny"),
            (by_message["third"].id, "approve"),
        ]
        assert results[2]["feedbacks"] == {"note": "3"}


async def test_request_notify_then_wait(dbos_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(dbos_workflows.two_step)
        [request] = await pending_requests(s.hitl)
        await timeline_messages(s.hitl, request.id, containing="a deploy is waiting for approval")
        await s.hitl.inbox.resolve(request.id, action_id="approve")
        assert (await handle.get_result())["actionId"] == "approve"


async def test_a_second_delivery_of_a_decision_changes_nothing(
    dbos_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack(dbos_database_url, monkeypatch) as s:
        handle = await DBOS.start_workflow_async(dbos_workflows.ask, {})
        [request] = await pending_requests(s.hitl)
        first = Resolved(id=request.id, action_id="approve", external_ref="", feedbacks={"note": "first"})
        second = Resolved(id=request.id, action_id="deny", external_ref="", feedbacks={"reason": "second"})
        await s.resolver.resolve(request.token, first)
        await s.resolver.resolve(request.token, first)  # a retried delivery: the same idempotency key
        result = await handle.get_result()
        assert (result["actionId"], result["feedbacks"]) == ("approve", {"note": "first"})
        await s.resolver.resolve(request.token, second)  # the workflow has moved on: nothing waits on it
