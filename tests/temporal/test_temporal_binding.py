"""The Temporal binding against a real Temporal dev server and a real `Hitl` served by uvicorn.

Each test runs a worker (in process, with the workflow sandbox) and a `Hitl` whose resolver is a
`TemporalResolver`; decisions are made with `hitl.inbox.resolve`, as a reviewer would. Histories are
replayed through `temporalio.worker.Replayer` to prove the workflows are deterministic.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from engine_support import (
    SECRET,
    RecordingChannel,
    activity_inputs,
    pending_requests,
    served,
    timeline_messages,
    timer_seconds,
)
from temporal_workflows import WORKFLOWS, AskWorkflow, BatchWorkflow, TwoStepWorkflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer, Worker

from hitl_streams import BatchDecision, Hitl, InMemoryState, Reviewer
from hitl_streams.server.channels import InboxChannel
from hitl_streams.temporal import TemporalResolver, hitl_activities


@dataclass
class Stack:
    client: Client
    hitl: Hitl
    ops: RecordingChannel
    task_queue: str

    async def start(self, workflow: Any, arg: Any = None) -> WorkflowHandle[Any, Any]:
        args = [] if arg is None else [arg]
        return await self.client.start_workflow(
            workflow, *args, id=f"hitl-test-{uuid.uuid4().hex[:12]}", task_queue=self.task_queue
        )


@asynccontextmanager
async def stack(temporal_address: str) -> AsyncIterator[Stack]:
    """A served `Hitl` resuming through `TemporalResolver`, and a worker running the test workflows."""
    client = await Client.connect(temporal_address)
    ops = RecordingChannel()
    # The inbox is the default channel; `ops` only receives escalations.
    hitl = Hitl(InMemoryState(), resolver=TemporalResolver(client), adapters=[InboxChannel(), ops], secret=SECRET)
    task_queue = f"hitl-{uuid.uuid4().hex[:8]}"
    async with served(hitl) as url:
        activities = hitl_activities(url=url, secret=SECRET)
        async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=activities):
            yield Stack(client, hitl, ops, task_queue)


async def replay(handle: WorkflowHandle[Any, Any]) -> None:
    """Replays the recorded history with the current workflow code; raises on any nondeterminism."""
    history = await handle.fetch_history()
    await Replayer(workflows=WORKFLOWS).replay_workflow(history)


async def test_approve_with_an_edited_field(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(AskWorkflow, {"message": "Ship v2?"})
        [request] = await pending_requests(s.hitl)
        assert request.message == "Ship v2?"
        assert request.context == {"workflow": handle.id}
        # The token the TypeScript binding's resolver decodes, byte for byte.
        assert request.token == f'{{"workflowId":"{handle.id}","waitToken":"hitl-wait-1"}}'
        await s.hitl.inbox.resolve(
            request.id, action_id="approve", feedbacks={"note": "go"}, by=Reviewer(id="u1", name="Ada")
        )
        result = await handle.result()
        assert result["type"] == "RESOLVED"
        assert result["id"] == request.id
        assert result["actionId"] == "approve"
        assert result["feedbacks"] == {"note": "go"}
        assert result["edited"] is True
        assert result["by"] == {"id": "u1", "name": "Ada"}
        # The worker's activity added the server URL and the bearer secret: the history never saw them.
        [create] = activity_inputs((await handle.fetch_history()).events)
        assert create["url"] == "/.well-known/hitl/v1/requests"
        assert create["headers"] == {"content-type": "application/json"}
        await replay(handle)


async def test_deny_with_feedback_fields(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(AskWorkflow, {"timeout": "1h"})
        [request] = await pending_requests(s.hitl)
        await s.hitl.inbox.resolve(request.id, action_id="deny", feedbacks={"reason": "too risky"})
        result = await handle.result()
        assert (result["type"], result["actionId"], result["feedbacks"]) == (
            "RESOLVED",
            "deny",
            {"reason": "too risky"},
        )
        # The decision ended the wait: the 1h timer (if it started before the decision came) never fired,
        # and the only HTTP call was the creation (no timeout was posted).
        events = (await handle.fetch_history()).events
        assert timer_seconds(events) in ([], [3600.0])
        assert not any(e.HasField("timer_fired_event_attributes") for e in events)
        assert sum(e.HasField("activity_task_scheduled_event_attributes") for e in events) == 1
        record = await s.hitl.inbox.get(request.id)
        assert record is not None and record.status == "resolved"
        await replay(handle)


async def test_timeout_returns_timed_out(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(AskWorkflow, {"timeout": "2s"})
        [request] = await pending_requests(s.hitl)
        result = await handle.result()
        assert result == {"type": "TIMED_OUT", "id": request.id, "externalRef": request.external_id or ""}
        record = await s.hitl.inbox.get(request.id)
        assert record is not None and record.status == "resolved"
        assert timer_seconds((await handle.fetch_history()).events) == [2.0]
        await replay(handle)


async def test_reminder_and_escalation_fire_on_their_timers(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(AskWorkflow, {"remind_after": "1s", "escalate_after": "2s", "timeout": "3s"})
        [request] = await pending_requests(s.hitl)
        result = await handle.result()
        assert result["type"] == "TIMED_OUT"
        # Durable timers: 1s to the reminder, then to the escalation (2s) and the timeout (3s) after the
        # wait began, by the workflow's clock (so shortened by the time the reminder's activity took).
        first, second, third = timer_seconds((await handle.fetch_history()).events)
        assert first == 1.0
        assert 0 < second <= 1.0 and 0 < third <= 1.0
        messages = [entry.message for entry in await s.hitl.inbox.timeline(request.id)]
        assert messages.index("Still waiting on you") < messages.index("Escalated to ops")
        assert [n.message for n in s.ops.notifications] == ["Escalated to ops"]
        await replay(handle)


async def test_decision_between_reminders_stops_them(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(AskWorkflow, {"remind_after": "1s", "escalate_after": "1h", "timeout": "2h"})
        [request] = await pending_requests(s.hitl)
        await timeline_messages(s.hitl, request.id, containing="Still waiting on you")
        await s.hitl.inbox.resolve(request.id, action_id="approve")
        result = await handle.result()
        assert (result["type"], result["actionId"], result["feedbacks"]) == ("RESOLVED", "approve", {"note": "ok"})
        assert s.ops.notifications == []  # the escalation never fired
        await replay(handle)


async def test_batch(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(BatchWorkflow, {"items": ["first", "second", "third"]})
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
        results = await handle.result()
        assert [(r["id"], r["actionId"]) for r in results] == [
            (by_message["first"].id, "approve"),
            (by_message["second"].id, "deny"),
            (by_message["third"].id, "approve"),
        ]
        assert results[2]["feedbacks"] == {"note": "3"}
        await replay(handle)


async def test_request_notify_then_wait(temporal_address: str) -> None:
    async with stack(temporal_address) as s:
        handle = await s.start(TwoStepWorkflow)
        [request] = await pending_requests(s.hitl)
        await timeline_messages(s.hitl, request.id, containing="a deploy is waiting for approval")
        await s.hitl.inbox.resolve(request.id, action_id="approve")
        assert (await handle.result())["actionId"] == "approve"
        await replay(handle)
