"""The Temporal binding's parts: the token, the resolver's refusals, duplicate deliveries, reloaded waits."""

from __future__ import annotations

import importlib
import json
import re
import uuid
from pathlib import Path

import pytest
from engine_support import SECRET, pending_requests, served
from temporal_workflows import WORKFLOWS, AskWorkflow, ReloadedPendingWorkflow
from temporalio.client import Client
from temporalio.worker import Worker

from hitl_streams import Hitl, HitlError, InMemoryState, Resolved, ResumeRejected
from hitl_streams.temporal import (
    HITL_RESUME_SIGNAL,
    TemporalResolver,
    decode_hitl_token,
    encode_hitl_token,
    hitl_activities,
    temporal_hitl_client,
)


def test_the_token_is_the_typescript_bindings_json() -> None:
    token = encode_hitl_token("order-42", "hitl-wait-3")
    assert token == '{"workflowId":"order-42","waitToken":"hitl-wait-3"}'  # JSON.stringify's bytes
    assert decode_hitl_token(token) == ("order-42", "hitl-wait-3")
    assert decode_hitl_token(encode_hitl_token('é "x"', "w")) == ('é "x"', "w")
    assert HITL_RESUME_SIGNAL == "hitl-resume"


MALFORMED = [
    "",
    "not json",
    "[]",
    '{"workflowId":"a"}',
    '{"waitToken":"w"}',
    '{"workflowId":"","waitToken":"w"}',
    '{"workflowId":1,"waitToken":"w"}',
]


@pytest.mark.parametrize("token", MALFORMED)
def test_a_malformed_token_is_refused_by_name(token: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(f'Invalid hitl token: {token}')}$"):
        decode_hitl_token(token)


def test_the_client_is_for_workflow_code_only() -> None:
    with pytest.raises(HitlError, match="inside a Temporal workflow"):
        temporal_hitl_client()


RESULT = Resolved(id="r1", action_id="approve", external_ref="", feedbacks={})


async def test_the_resolver_rejects_what_can_never_be_resumed(temporal_address: str) -> None:
    resolver = TemporalResolver(await Client.connect(temporal_address))
    with pytest.raises(ResumeRejected, match="Invalid hitl token: nope"):
        await resolver.resolve("nope", RESULT)
    with pytest.raises(ResumeRejected, match="is not running"):
        await resolver.resolve(encode_hitl_token(f"missing-{uuid.uuid4().hex}", "hitl-wait-1"), RESULT)


async def test_the_first_delivery_wins_and_a_duplicate_changes_nothing(temporal_address: str) -> None:
    client = await Client.connect(temporal_address)
    resolver = TemporalResolver(client)
    hitl = Hitl(InMemoryState(), secret=SECRET)  # no resolver: the test delivers by hand
    task_queue = f"hitl-{uuid.uuid4().hex[:8]}"
    async with served(hitl) as url:
        activities = hitl_activities(url=url, secret=SECRET)
        async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=activities):
            handle = await client.start_workflow(
                AskWorkflow, {}, id=f"hitl-dup-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            [request] = await pending_requests(hitl)
            first = Resolved(id=request.id, action_id="approve", external_ref="", feedbacks={"note": "first"})
            second = Resolved(id=request.id, action_id="deny", external_ref="", feedbacks={"reason": "second"})
            # A signal for a wait that does not exist yet is kept, not dropped (it is never used here).
            await handle.signal(HITL_RESUME_SIGNAL, {"waitToken": "hitl-wait-9", "payload": {"ignored": True}})
            await handle.signal(HITL_RESUME_SIGNAL, {"no": "waitToken"})  # ignored, with a warning
            await resolver.resolve(request.token, first)
            await resolver.resolve(request.token, second)
            result = await handle.result()
    assert (result["actionId"], result["feedbacks"]) == ("approve", {"note": "first"})
    assert json.loads(request.token)["waitToken"] == "hitl-wait-1"
    with pytest.raises(ResumeRejected, match="is not running"):  # the workflow has completed
        await resolver.resolve(request.token, second)


async def test_a_reloaded_pending_is_waited_on_by_another_client_object(temporal_address: str) -> None:
    client = await Client.connect(temporal_address)
    hitl = Hitl(InMemoryState(), resolver=TemporalResolver(client), secret=SECRET)
    task_queue = f"hitl-{uuid.uuid4().hex[:8]}"
    async with served(hitl) as url:
        activities = hitl_activities(url=url, secret=SECRET)
        async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=activities):
            handle = await client.start_workflow(
                ReloadedPendingWorkflow.run, id=f"hitl-reload-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            [request] = await pending_requests(hitl)
            await hitl.inbox.resolve(request.id, action_id="approve")
            result = await handle.result()
    assert (result["id"], result["actionId"]) == (request.id, "approve")


async def test_an_import_the_sandbox_would_redo_is_refused_with_the_fix(
    temporal_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "unpassed_workflow.py").write_text(
        "from temporalio import workflow\n"
        "from hitl_streams.temporal import temporal_hitl_client\n\n\n"
        "@workflow.defn\n"
        "class Unpassed:\n"
        "    @workflow.run\n"
        "    async def run(self) -> None:\n"
        "        temporal_hitl_client()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("unpassed_workflow")
    client = await Client.connect(temporal_address)
    with pytest.raises(RuntimeError, match="Failed validating workflow") as caught:
        Worker(client, task_queue="never-polled", workflows=[module.Unpassed])
    chain = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    assert any("imports_passed_through()" in message for message in chain), chain
