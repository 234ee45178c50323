"""The DBOS binding's parts: the token, the resolver's refusals, reloaded waits, use outside a workflow."""

from __future__ import annotations

import re
import uuid

import dbos_workflows
import pytest
from dbos import DBOS
from engine_support import SECRET, pending_requests, served

from hitl_streams import Hitl, HitlError, InMemoryState, Resolved, ResumeRejected
from hitl_streams.dbos import DBOSResolver, dbos_hitl_client, decode_dbos_token, encode_dbos_token


def test_the_token_names_the_workflow_and_the_topic() -> None:
    token = encode_dbos_token("wf-1", "hitl-wait-2")
    assert token == '{"workflowId":"wf-1","topic":"hitl-wait-2"}'
    assert decode_dbos_token(token) == ("wf-1", "hitl-wait-2")


@pytest.mark.parametrize("token", ["", "{", "[]", '{"workflowId":"a"}', '{"workflowId":"a","topic":""}'])
def test_a_malformed_token_is_refused_by_name(token: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(f'Invalid hitl token: {token}')}$"):
        decode_dbos_token(token)


def test_the_client_is_for_workflow_code_only() -> None:
    with pytest.raises(HitlError, match="inside a DBOS workflow"):
        dbos_hitl_client()


async def test_the_resolver_rejects_what_can_never_be_resumed(dbos_database_url: str) -> None:
    resolver = DBOSResolver(dbos_database_url)
    result = Resolved(id="r1", action_id="approve", external_ref="", feedbacks={})
    try:
        with pytest.raises(ResumeRejected, match="Invalid hitl token: nope"):
            await resolver.resolve("nope", result)
        with pytest.raises(ResumeRejected, match="does not exist"):
            await resolver.resolve(encode_dbos_token(f"missing-{uuid.uuid4().hex}", "hitl-wait-1"), result)
    finally:
        await resolver.close()
    assert "password" not in repr(DBOSResolver("postgresql://u:password@db/sys"))


async def test_a_reloaded_pending_is_waited_on_by_another_client_object(
    dbos_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = DBOSResolver(dbos_database_url)
    hitl = Hitl(InMemoryState(), resolver=resolver, secret=SECRET)
    async with served(hitl) as url:
        monkeypatch.setenv("HITL_URL", url)
        monkeypatch.setenv("HITL_SECRET", SECRET)
        handle = await DBOS.start_workflow_async(dbos_workflows.reloaded_pending)
        [request] = await pending_requests(hitl)
        await hitl.inbox.resolve(request.id, action_id="approve")
        result = await handle.get_result()
    await resolver.close()
    assert (result["id"], result["actionId"]) == (request.id, "approve")


async def test_clients_of_one_workflow_never_share_a_wait(
    dbos_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = DBOSResolver(dbos_database_url)
    hitl = Hitl(InMemoryState(), resolver=resolver, secret=SECRET)
    async with served(hitl) as url:
        monkeypatch.setenv("HITL_URL", url)
        monkeypatch.setenv("HITL_SECRET", SECRET)
        handle = await DBOS.start_workflow_async(dbos_workflows.two_clients)
        first, second = await pending_requests(hitl, 2)
        assert (first.message, second.message) == ("First?", "Second?")
        assert first.token != second.token
        await hitl.inbox.resolve(second.id, action_id="deny", feedbacks={"reason": "no"})
        await hitl.inbox.resolve(first.id, action_id="approve")
        results = await handle.get_result()
    await resolver.close()
    assert [(r["id"], r["actionId"]) for r in results] == [(first.id, "approve"), (second.id, "deny")]
