"""Batches through the HTTP API and the inbox (REF §5.3, §5.5-§5.7), with the SPEC §6 fixes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hitl_streams import AlreadyResolvedError, FeedbackValidationError, Resolved, State, TimedOut, ValidationError
from hitl_streams.server import BatchDecision, CallbackResolver, Hitl
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY, Resumed


def batch_body(n: int = 2, **extra: Any) -> dict[str, Any]:
    items = [{"token": f"bt-{i}", "message": f"item {i}"} for i in range(n)]
    return {"message": "Review these", "items": items, "actions": APPROVE_DENY, **extra}


@pytest.fixture
async def batch_hitl(state: State, resumed: Resumed) -> Any:
    board = RecordingAdapter("board", batch=True)
    async with Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[board], secret="") as hitl:
        yield hitl, board


async def post(hitl: Hitl, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        return await client.post(f"{API}/{path}", json=body)


async def test_a_batch_is_delivered_as_one_message_when_the_adapter_can(batch_hitl: Any) -> None:
    hitl, board = batch_hitl
    items = [
        {"token": "bt-0", "message": "first"},
        {"token": "bt-1", "message": "second", "defaults": {"subject": "Custom", "unknown": 1}},
    ]
    response = await post(hitl, "batches", batch_body(items=items, context={"k": 1}))
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["batchId", "ids", "externalRef"]
    batch_id = body["batchId"]
    assert body["ids"] == [f"{batch_id}:0", f"{batch_id}:1"]
    assert body["externalRef"] == f"board/batch/{batch_id}"
    [sent] = board.batches
    assert (sent.batch_id, sent.channel, sent.message, sent.context) == (batch_id, "board", "Review these", {"k": 1})
    assert [(i.id, i.message, i.defaults) for i in sent.items] == [
        (f"{batch_id}:0", "first", {"subject": "Hi"}),
        (f"{batch_id}:1", "second", {"subject": "Custom"}),
    ]
    assert board.sent == []
    view = await hitl.inbox.get_batch(batch_id)
    assert view is not None and view.batch.external_id == body["externalRef"]
    assert [(r.batch_index, r.token, r.namespace) for r in view.items] == [(0, "bt-0", "global"), (1, "bt-1", "global")]
    assert view.items[1].actions[0].fields["subject"].default == "Custom"
    assert view.items[0].actions[0].fields["subject"].default == "Hi"


async def test_a_batch_falls_back_to_one_message_per_item(state: State, resumed: Resumed) -> None:
    chat = RecordingAdapter("chat")  # no batch UI
    async with Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[chat], secret="") as hitl:
        body = (await post(hitl, "batches", batch_body(3))).json()
    assert [s.id for s in chat.sent] == body["ids"]
    assert body["externalRef"] == f"chat/{body['ids'][0]}"
    assert [s.message for s in chat.sent] == ["item 0", "item 1", "item 2"]


async def test_batch_defaults_follow_defaults_action_id(batch_hitl: Any) -> None:
    hitl, board = batch_hitl
    actions = [{"id": "edit", "fields": {"title": {"kind": "text", "label": "Title", "default": "T"}}}]
    items = [{"token": "x0", "message": "a", "defaults": {"title": "Mine"}}]
    response = await post(hitl, "batches", {"items": items, "actions": actions, "defaultsActionId": "edit"})
    assert response.status_code == 201
    # Item defaults come from the defaults action, not from a missing approve action (REF §10.6 item 35).
    assert board.batches[0].items[0].defaults == {"title": "Mine"}


async def test_a_batch_without_approve_and_without_defaults_is_accepted(batch_hitl: Any) -> None:
    hitl, _ = batch_hitl
    response = await post(hitl, "batches", batch_body(actions=[{"id": "ack"}]))
    assert response.status_code == 201


async def test_a_retried_batch_returns_the_same_batch_without_sending_again(batch_hitl: Any) -> None:
    hitl, board = batch_hitl
    first = (await post(hitl, "batches", batch_body())).json()
    again = await post(hitl, "batches", batch_body())
    assert (again.status_code, again.json()) == (201, first)
    assert len(board.batches) == 1
    assert await hitl.inbox.count() == 2


async def test_a_retried_batch_finishes_every_interrupted_delivery(state: State, resumed: Resumed) -> None:
    chat = RecordingAdapter("chat")
    async with Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[chat], secret="") as hitl:
        chat.fail("send", times=1)
        failed = await post(hitl, "batches", batch_body(3))
        assert failed.status_code == 502
        view_items = (await hitl.inbox.list()).items
        assert all(r.external_id is None for r in view_items)
        retried = await post(hitl, "batches", batch_body(3))
        assert retried.status_code == 201
        body = retried.json()
        view = await hitl.inbox.get_batch(body["batchId"])
    assert view is not None
    assert [r.external_id for r in view.items] == [f"chat/{i}" for i in body["ids"]]
    delivered = [s.id for s in chat.sent]
    assert delivered == [body["ids"][0], *body["ids"]]  # the failed attempt, then each item exactly once


async def test_a_batch_interrupted_while_creating_items_is_completed(state: State, resumed: Resumed) -> None:
    """A crash after some items were written: the retry creates the rest and delivers the batch."""
    board = RecordingAdapter("board", batch=True)
    async with Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[board], secret="") as hitl:
        first = (await post(hitl, "batches", batch_body(1))).json()  # the same first token: the same batch
        retried = (await post(hitl, "batches", batch_body(3))).json()
        view = await hitl.inbox.get_batch(first["batchId"])
    assert retried["batchId"] == first["batchId"]
    assert retried["ids"] == [f"{first['batchId']}:{i}" for i in range(3)]
    assert view is not None and len(view.items) == 3


async def test_a_batch_whose_first_token_is_a_single_request_is_a_conflict(client: httpx.AsyncClient) -> None:
    single = {"token": "bt-0", "message": "m", "actions": APPROVE_DENY}
    assert (await client.post(f"{API}/requests", json=single)).status_code == 201
    response = await client.post(f"{API}/batches", json=batch_body())
    assert response.status_code == 409


async def test_batch_timeout_keeps_decided_items_and_times_out_the_rest(batch_hitl: Any, resumed: Resumed) -> None:
    hitl, board = batch_hitl
    body = (await post(hitl, "batches", batch_body(3))).json()
    decided = await hitl.inbox.resolve(body["ids"][1], action_id="approve")
    response = await post(hitl, f"batches/{body['batchId']}/timeout", None)
    results = response.json()["results"]
    assert [r["type"] for r in results] == ["TIMED_OUT", "RESOLVED", "TIMED_OUT"]
    assert results[0] == {"type": "TIMED_OUT", "id": body["ids"][0], "externalRef": body["externalRef"]}
    [(ext, update)] = board.batch_updates
    assert ext == body["externalRef"]
    assert update[1] == decided and isinstance(update[0], TimedOut)
    # Timeouts resume the waits too, so none is left open (REF §10.2 item 10).
    await resumed.wait_for(3)
    assert sorted(token for token, _ in resumed.calls) == ["bt-0", "bt-1", "bt-2"]


async def test_batch_remind_threads_under_the_batch_message_until_all_are_decided(batch_hitl: Any) -> None:
    hitl, board = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    response = await post(hitl, f"batches/{body['batchId']}/remind", {"kind": "remind", "message": "ping"})
    assert response.json() == {"pending": True}
    [note] = board.notifications
    assert (note.destination, note.message) == (body["externalRef"], "ping")
    assert [e.message for e in await hitl.inbox.timeline(body["batchId"])] == ["ping"]
    await hitl.inbox.resolve_batch(
        body["batchId"], [BatchDecision(request_id=i, action_id="approve") for i in body["ids"]]
    )
    response = await post(hitl, f"batches/{body['batchId']}/remind", {"kind": "remind"})
    assert response.json() == {"pending": False}


async def test_batch_remind_without_a_body_is_a_default_reminder(batch_hitl: Any) -> None:
    hitl, board = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        response = await client.post(f"{API}/batches/{body['batchId']}/remind", content=b"")
    assert (response.status_code, response.json()) == (200, {"pending": True})
    [note] = board.notifications
    assert note.destination == body["externalRef"]


async def test_batch_escalation_redeliver_sends_only_pending_items(state: State, resumed: Resumed) -> None:
    board, pager = RecordingAdapter("board", batch=True), RecordingAdapter("pager")
    async with Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[board, pager], secret="") as hitl:
        body = (await post(hitl, "batches", batch_body(3))).json()
        await hitl.inbox.resolve(body["ids"][0], action_id="approve")
        escalate = {"kind": "escalate", "channel": "pager", "mode": "redeliver"}
        assert (await post(hitl, f"batches/{body['batchId']}/remind", escalate)).json() == {"pending": True}
    assert [s.id for s in pager.sent] == body["ids"][1:]


async def test_resolve_batch_resolves_every_item_and_resumes_each(batch_hitl: Any, resumed: Resumed) -> None:
    hitl, board = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    decisions = [
        BatchDecision(request_id=body["ids"][0], action_id="approve", feedbacks={"subject": "Edited"}),
        BatchDecision(request_id=body["ids"][1], action_id="deny", feedbacks={"reason": "no"}),
    ]
    results = await hitl.inbox.resolve_batch(body["batchId"], decisions)
    assert [(r.action_id, r.edited) for r in results if isinstance(r, Resolved)] == [("approve", True), ("deny", True)]
    assert all(r.external_ref == body["externalRef"] for r in results)
    await resumed.wait_for(2)
    assert sorted((t, r.id) for t, r in resumed.calls) == [("bt-0", body["ids"][0]), ("bt-1", body["ids"][1])]
    assert board.batch_updates == [(body["externalRef"], results)]


async def test_resolve_batch_takes_typescript_shaped_decisions(batch_hitl: Any) -> None:
    hitl, _ = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    with pytest.raises(ValidationError, match="batch decision"):
        await hitl.inbox.resolve_batch(body["batchId"], [{"requestId": body["ids"][0]}, "approve"])
    assert await hitl.inbox.count(status="pending") == 2
    decisions: list[Any] = [
        {"requestId": body["ids"][0], "actionId": "approve", "feedbacks": {"subject": "Edited"}},
        {"request_id": body["ids"][1], "action_id": "deny", "feedbacks": {"reason": "no"}},
    ]
    results = await hitl.inbox.resolve_batch(body["batchId"], decisions)
    assert [(r.id, r.action_id, r.feedbacks) for r in results if isinstance(r, Resolved)] == [
        (body["ids"][0], "approve", {"subject": "Edited"}),
        (body["ids"][1], "deny", {"reason": "no"}),
    ]


async def test_resolve_batch_validates_everything_before_writing(batch_hitl: Any) -> None:
    hitl, _ = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    good = BatchDecision(request_id=body["ids"][0], action_id="approve")
    bad = BatchDecision(request_id=body["ids"][1], action_id="approve", feedbacks={"nope": 1})
    with pytest.raises(FeedbackValidationError, match='Unknown feedback key: "nope"'):
        await hitl.inbox.resolve_batch(body["batchId"], [good, bad])
    with pytest.raises(ValidationError, match=f'Missing decision for batch item "{body["ids"][1]}"'):
        await hitl.inbox.resolve_batch(body["batchId"], [good])
    with pytest.raises(ValidationError, match="has no item"):
        await hitl.inbox.resolve_batch(body["batchId"], [good, BatchDecision(request_id="x", action_id="approve")])
    assert await hitl.inbox.count(status="pending") == 2


async def test_resolve_batch_keeps_decided_items_and_rejects_a_changed_decision(batch_hitl: Any) -> None:
    hitl, _ = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    first = await hitl.inbox.resolve(body["ids"][0], action_id="approve")
    results = await hitl.inbox.resolve_batch(
        body["batchId"], [BatchDecision(request_id=body["ids"][1], action_id="deny", feedbacks={"reason": "r"})]
    )
    assert results[0] == first
    with pytest.raises(AlreadyResolvedError):
        await hitl.inbox.resolve_batch(
            body["batchId"], [BatchDecision(request_id=body["ids"][0], action_id="deny", feedbacks={"reason": "x"})]
        )


async def test_a_concurrent_item_decision_never_leaves_the_batch_half_resolved(batch_hitl: Any) -> None:
    hitl, _ = batch_hitl
    body = (await post(hitl, "batches", batch_body(5))).json()
    decisions = [BatchDecision(request_id=i, action_id="approve") for i in body["ids"]]
    single = hitl.inbox.resolve(body["ids"][3], action_id="deny", feedbacks={"reason": "first"})
    outcomes = await asyncio.gather(
        hitl.inbox.resolve_batch(body["batchId"], decisions), single, return_exceptions=True
    )
    assert await hitl.inbox.count(status="pending") == 0
    view = await hitl.inbox.get_batch(body["batchId"])
    assert view is not None
    stored = [r.result for r in view.items]
    batch_results = outcomes[0]
    if isinstance(batch_results, list):
        assert batch_results == stored


async def test_batch_escalation_redeliver_uses_the_batch_ui_of_the_new_channel(state: State, resumed: Resumed) -> None:
    board, wall = RecordingAdapter("board", batch=True), RecordingAdapter("wall", batch=True)
    async with Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[board, wall], secret="") as hitl:
        body = (await post(hitl, "batches", batch_body(2))).json()
        escalate = {"kind": "escalate", "channel": "wall:ops", "mode": "redeliver"}
        assert (await post(hitl, f"batches/{body['batchId']}/remind", escalate)).json() == {"pending": True}
        [again] = wall.batches
        assert (again.batch_id, again.destination, [i.id for i in again.items]) == (body["batchId"], "ops", body["ids"])
        view = await hitl.inbox.get_batch(body["batchId"])
        assert view is not None
        assert view.batch.external_ids == {"board": body["externalRef"], "wall:ops": f"wall/batch/{body['batchId']}"}
        results = await hitl.inbox.resolve_batch(
            body["batchId"], [BatchDecision(request_id=i, action_id="approve") for i in body["ids"]]
        )
    assert board.batch_updates == [(body["externalRef"], results)]
    assert wall.batch_updates == [(f"wall/batch/{body['batchId']}", results)]


async def test_the_batch_audit_trail(batch_hitl: Any) -> None:
    hitl, _ = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    await post(hitl, f"batches/{body['batchId']}/remind", {"kind": "remind"})
    await post(hitl, f"batches/{body['batchId']}/remind", {"kind": "escalate", "channel": "inbox"})
    await post(hitl, f"batches/{body['batchId']}/remind", {"kind": "escalate", "channel": "inbox", "mode": "redeliver"})
    await hitl.inbox.resolve(body["ids"][0], action_id="approve")
    await post(hitl, f"batches/{body['batchId']}/timeout", None)
    names = [type(r.event).__name__ for r in await hitl.inbox.audit(body["batchId"])]
    for expected in [
        "BatchCreated",
        "RequestCreated",
        "BatchDelivered",
        "BatchReminded",
        "BatchEscalated",
        "BatchRedelivered",
        "BatchTimedOut",
    ]:
        assert expected in names, (expected, names)
    assert names.index("BatchDelivered") < names.index("BatchReminded") < names.index("BatchTimedOut")
    timed_out = [r.event for r in await hitl.inbox.audit(body["batchId"]) if type(r.event).__name__ == "BatchTimedOut"]
    assert timed_out[0].item_ids == [body["ids"][1]]


async def test_an_item_timed_out_alone_takes_its_batch_external_ref(batch_hitl: Any, resumed: Resumed) -> None:
    """A batch item has no external id of its own: its timeout's ref is its batch's (read for it)."""
    hitl, _ = batch_hitl
    body = (await post(hitl, "batches", batch_body(2))).json()
    response = await post(hitl, f"requests/{body['ids'][0]}/timeout", None)
    assert response.json()["result"] == {"type": "TIMED_OUT", "id": body["ids"][0], "externalRef": body["externalRef"]}
    again = await post(hitl, f"requests/{body['ids'][0]}/timeout", None)
    assert again.json() == response.json()
    await resumed.wait_for(1)
