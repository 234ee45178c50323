"""The Slack channel against a local fake of Slack's Web API (uvicorn on a free loopback port), with
interactivity payloads shaped and signed like Slack's, posted through the ASGI app; on every State."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hitl_streams import InMemoryState, State, StreamState
from hitl_streams.channels._retry import RetryPolicy
from hitl_streams.channels.slack import SlackChannel
from hitl_streams.channels.slack_signature import sign
from hitl_streams.history import events as ev
from hitl_streams.results import Resolved
from hitl_streams.reviewers import ReviewerDirectory
from hitl_streams.server import Hitl
from hitl_streams.server.wire import parse_create_batch, parse_create_request, parse_remind
from tests.server.conftest import resume_queue_for
from tests.server.support import served

from .fake_slack import BOT_TOKEN, SIGNING_SECRET, Failure, FakeSlack, click, signed, submission

ACTIONS: list[dict[str, Any]] = [
    {"id": "approve"},
    {"id": "deny", "fields": {"reason": {"kind": "textarea", "label": "Reason"}}},
    {
        "id": "edit",
        "label": "Approve with changes",
        "fields": {
            "subject": {"kind": "text", "label": "Subject", "default": "Hi"},
            "tone": {"kind": "select", "label": "Tone", "options": ["warm", "dry"], "default": "warm"},
            "notify": {"kind": "confirm", "label": "Notify the customer", "default": True},
        },
    },
]
URL = "/channels/slack/interactivity"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeSlack, str]]:
    slack = FakeSlack(users={"UANA": "Ana@Example.com", "UBOB": "bob@example.com", "UEVE": "eve@example.com"})
    async with served(slack) as url:
        yield slack, f"{url}/api/"


def make_hitl(state: State, api_url: str) -> Hitl:
    channel = SlackChannel(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        default_channel="C1",
        base_url=api_url,
        retry=RetryPolicy(attempts=3, base=0.01, cap=0.02),
    )
    return Hitl(state=state, adapters=[channel], secret="", resume_queue=resume_queue_for(state))


@pytest.fixture
async def hitl(state: State, fake: tuple[FakeSlack, str]) -> AsyncIterator[Hitl]:
    server = make_hitl(state, fake[1])
    directory = server.state.reviewers  # type: ignore[attr-defined]
    assert isinstance(directory, ReviewerDirectory)
    await directory.add("ana", namespaces=["billing"], email="ana@example.com")
    await directory.add("eve", namespaces=["ops"], email="eve@example.com")  # another namespace
    async with server:
        yield server


@pytest.fixture
async def http(hitl: Hitl) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://hitl.test") as client:
        yield client


async def create(hitl: Hitl, token: str = "t1", **extra: Any) -> str:
    body = parse_create_request(
        {
            "token": token,
            "message": "Refund <b>42</b> EUR to @channel?",
            "actions": ACTIONS,
            "namespace": "billing",
            "context": {"customer": "ACME & co", "amount": 42},
            **extra,
        }
    )
    return (await hitl.core.create_request(body)).id


async def post(http: httpx.AsyncClient, payload: dict[str, Any], **sign: Any) -> httpx.Response:
    body, headers = signed(payload, **sign)
    return await http.post(URL, content=body, headers=headers)


async def resolutions(state: State, request_id: str) -> list[ev.Event]:
    audit = await state.audit(request_id)  # type: ignore[attr-defined]
    return [r.event for r in audit if isinstance(r.event, ev.RequestResolved)]


async def test_send_posts_a_card_with_context_and_one_button_per_action(
    hitl: Hitl, fake: tuple[FakeSlack, str]
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    (message,) = slack.posted("chat.postMessage")
    assert message["channel"] == "C1"
    assert message["text"] == "Refund &lt;b&gt;42&lt;/b&gt; EUR to @channel?"  # <!channel> could not ping
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == "Refund &lt;b&gt;42&lt;/b&gt; EUR to @channel?"  # escaped mrkdwn
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == ["*customer*\nACME &amp; co", "*amount*\n42"]
    buttons = blocks[2]["elements"]
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in buttons] == [
        ("hitl:approve", request_id, "Approve"),
        ("hitl:deny", request_id, "Deny"),
        ("hitl:edit", request_id, "Approve with changes"),
    ]
    assert buttons[0]["style"] == "primary" and buttons[1]["style"] == "danger"
    record = await hitl.state.get(request_id)
    assert record is not None and record.external_id == "C1:1700000000.000001"


async def test_a_reviewer_approves_and_the_card_becomes_the_outcome(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    response = await post(http, click("UANA", request_id, "approve"))
    assert response.status_code == 200
    record = await hitl.state.get(request_id)
    assert record is not None and isinstance(record.result, Resolved)
    assert record.result.action_id == "approve"
    assert record.result.by is not None and record.result.by.name == "ana"
    (update,) = slack.posted("chat.update")
    assert (update["channel"], update["ts"]) == ("C1", "1700000000.000001")
    assert update["blocks"][-1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "Approved by ana"}]}
    assert not any(b["type"] == "actions" for b in update["blocks"])


async def test_an_action_with_fields_opens_a_modal_and_its_submission_decides(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    assert (await post(http, click("UANA", request_id, "edit"))).status_code == 200
    (opened,) = slack.posted("views.open")
    view = opened["view"]
    assert opened["trigger_id"] == "trigger-1" and view["callback_id"] == "hitl:modal"
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["subject"]["initial_value"] == "Hi"
    assert inputs["tone"]["initial_option"]["value"] == "warm"
    assert inputs["notify"]["type"] == "radio_buttons" and inputs["notify"]["initial_option"]["value"] == "yes"
    assert (await hitl.state.get(request_id)).status == "pending"  # type: ignore[union-attr]

    values = {
        "subject": {"value": {"type": "plain_text_input", "value": "Hello there"}},
        "tone": {"value": {"type": "static_select", "selected_option": {"value": "dry"}}},
        "notify": {"value": {"type": "radio_buttons", "selected_option": {"value": "no"}}},
    }
    response = await post(http, submission("UANA", request_id, "edit", values))
    assert response.status_code == 200 and response.content == b""  # closes the modal
    record = await hitl.state.get(request_id)
    assert record is not None and isinstance(record.result, Resolved)
    assert record.result.feedbacks == {"subject": "Hello there", "tone": "dry", "notify": False}
    assert record.result.edited and record.result.by is not None and record.result.by.name == "ana"
    (update,) = slack.posted("chat.update")
    assert update["blocks"][-1]["elements"][0]["text"] == "Approve with changes by ana with edits"


async def test_a_forged_or_stale_request_is_refused_and_changes_nothing(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    forged = await post(http, click("UANA", request_id, "approve"), secret="not-the-secret")
    stale = await post(http, click("UANA", request_id, "approve"), at=time.time() - 301)
    body, headers = signed(click("UANA", request_id, "approve"))
    tampered = await http.post(URL, content=body.replace(b"approve", b"deny"), headers=headers)
    unsigned = await http.post(URL, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert [r.status_code for r in (forged, stale, tampered, unsigned)] == [401, 401, 401, 401]
    record = await hitl.state.get(request_id)
    assert record is not None and record.status == "pending"
    assert slack.posted("users.info") == [] and slack.posted("chat.update") == []


async def test_someone_who_is_not_a_reviewer_here_gets_an_ephemeral_no(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    for user in ("UBOB", "UEVE", "UNOBODY"):  # no reviewer; a reviewer of another namespace; no e-mail
        assert (await post(http, click(user, request_id, "approve"))).status_code == 200
    modal = await post(http, submission("UEVE", request_id, "deny", {}))
    assert modal.json()["response_action"] == "update"
    ephemerals = slack.posted("chat.postEphemeral")
    assert [(e["user"], e["channel"]) for e in ephemerals] == [("UBOB", "C1"), ("UEVE", "C1"), ("UNOBODY", "C1")]
    assert all("not allowed" in e["text"] for e in ephemerals)
    record = await hitl.state.get(request_id)
    assert record is not None and record.status == "pending"
    assert await resolutions(hitl.state, request_id) == []


async def test_a_revoked_reviewer_decides_nothing(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    request_id = await create(hitl)
    await hitl.state.reviewers.revoke("ana")  # type: ignore[attr-defined]
    await post(http, click("UANA", request_id, "approve"))
    assert (await hitl.state.get(request_id)).status == "pending"  # type: ignore[union-attr]


async def test_a_double_click_records_one_decision(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    first = await post(http, click("UANA", request_id, "approve"))
    second = await post(http, click("UANA", request_id, "approve"))
    assert first.status_code == second.status_code == 200
    assert len(await resolutions(hitl.state, request_id)) == 1
    assert slack.posted("chat.postEphemeral") == []  # the same decision again is no error
    other = await post(http, click("UANA", request_id, "deny"))  # a different one is refused
    assert other.status_code == 200 and len(await resolutions(hitl.state, request_id)) == 1
    assert slack.posted("views.open") == []


async def test_an_update_after_a_restart_edits_the_right_message(state: State, fake: tuple[FakeSlack, str]) -> None:
    slack, api_url = fake
    first = make_hitl(state, api_url)
    await create(first, "t0")
    request_id = await create(first, "t1")
    # A new process: a fresh Hitl (and a fresh StreamState on the same Redis) with nothing in memory.
    again_state: State = state
    if isinstance(state, StreamState):
        again_state = StreamState(state.redis, table_name=state.table_name)
    else:
        assert isinstance(state, InMemoryState)
    second = make_hitl(again_state, api_url)
    await second.inbox.resolve(request_id, action_id="approve")
    (update,) = slack.posted("chat.update")
    assert (update["channel"], update["ts"]) == ("C1", "1700000000.000002")


async def test_reminders_thread_under_the_card_and_escalations_go_elsewhere(
    hitl: Hitl, fake: tuple[FakeSlack, str]
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    await hitl.core.remind(request_id, parse_remind({"kind": "remind", "message": "Still waiting"}))
    await hitl.core.remind(request_id, parse_remind({"kind": "escalate", "channel": "slack:#ops"}))
    await hitl.core.remind(request_id, parse_remind({"kind": "escalate", "channel": "slack:U123"}))
    card, reminder, ops, dm = slack.posted("chat.postMessage")
    assert (reminder["channel"], reminder["thread_ts"], reminder["text"]) == ("C1", card_ts(slack), "Still waiting")
    assert ops["channel"] == "#ops" and "thread_ts" not in ops
    assert dm["channel"] == "U123" and "thread_ts" not in dm
    assert card["channel"] == "C1"


def card_ts(slack: FakeSlack) -> str:
    return "1700000000.000001"


async def test_a_notification_after_a_request_threads_under_it(hitl: Hitl, fake: tuple[FakeSlack, str]) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    from hitl_streams.server.wire import parse_notify

    await hitl.core.notify(parse_notify({"message": "Refund sent", "after": {"id": request_id}}))
    await hitl.core.notify(parse_notify({"message": "Receipt mailed", "on": request_id}))
    _, note, other = slack.posted("chat.postMessage")
    assert (note["channel"], note["thread_ts"], note["text"]) == ("C1", "1700000000.000001", "Refund sent")
    assert (other["channel"], other["thread_ts"], other["text"]) == ("C1", "1700000000.000001", "Receipt mailed")


async def test_a_rate_limit_is_waited_out(hitl: Hitl, fake: tuple[FakeSlack, str]) -> None:
    slack, _ = fake
    slack.failures["chat.postMessage"] = [
        Failure(429, {"ok": False, "error": "ratelimited"}, [(b"retry-after", b"0")]),
        Failure(503, {"ok": False, "error": "service_unavailable"}),
    ]
    request_id = await create(hitl)
    assert len(slack.posted("chat.postMessage")) == 1
    record = await hitl.state.get(request_id)
    assert record is not None and record.external_id is not None and record.external_id.startswith("C1:")


async def test_a_permanent_failure_falls_back_to_the_inbox_and_is_audited(
    hitl: Hitl, fake: tuple[FakeSlack, str]
) -> None:
    slack, _ = fake
    slack.failures["chat.postMessage"] = [Failure(200, {"ok": False, "error": "channel_not_found"})]
    request_id = await create(hitl)
    record = await hitl.state.get(request_id)
    assert record is not None and record.status == "pending" and record.external_id == request_id
    audit = [r.event for r in await hitl.state.audit(request_id)]  # type: ignore[attr-defined]
    failed = [e for e in audit if isinstance(e, ev.ChannelFailed)]
    assert len(failed) == 1 and failed[0].operation == "deliver" and failed[0].fallback == "inbox"
    assert "channel_not_found" in failed[0].error
    page = await hitl.inbox.list(status="pending")
    assert [r.id for r in page.items] == [request_id]
    await hitl.inbox.resolve(request_id, action_id="approve")  # decided in the inbox; no Slack update
    assert slack.posted("chat.update") == []


async def test_a_batch_is_one_message_decided_item_by_item_or_all_at_once(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    body = parse_create_batch(
        {
            "message": "Three refunds",
            "actions": [{"id": "approve"}, {"id": "deny"}],
            "namespace": "billing",
            "items": [{"token": f"b{i}", "message": f"Refund {i}"} for i in range(3)],
        }
    )
    anchor = await hitl.core.create_batch(body)
    (message,) = slack.posted("chat.postMessage")
    ids = [b["action_id"] for b in message["blocks"] if b["type"] == "actions" for b in b["elements"]]
    assert ids == [
        *(f"hitl:item:{n}:{a}" for n in range(3) for a in ("approve", "deny")),
        "hitl:all:approve",
        "hitl:all:deny",
    ]
    first = anchor.ids[0]
    payload = click("UANA", first, "deny")
    payload["actions"][0]["action_id"] = "hitl:item:0:deny"
    await post(http, payload)
    assert (await hitl.state.get(first)).result.action_id == "deny"  # type: ignore[union-attr]
    (card,) = slack.posted("chat.update")  # the item's outcome shows at once; the others keep their buttons
    assert [b["elements"][0]["text"] for b in card["blocks"] if b["type"] == "context"] == ["Denied by ana"]
    assert [b["block_id"] for b in card["blocks"] if b["type"] == "actions"] == [
        "hitl:item:1",
        "hitl:item:2",
        "hitl:all",
    ]
    payload = click("UANA", anchor.batch_id, "approve")
    payload["actions"][0]["action_id"] = "hitl:all:approve"
    await post(http, payload)
    outcomes = [(await hitl.state.get(i)).result.action_id for i in anchor.ids]  # type: ignore[union-attr]
    assert outcomes == ["deny", "approve", "approve"]
    last = slack.posted("chat.update")[-1]
    lines = [b["elements"][0]["text"] for b in last["blocks"] if b["type"] == "context"]
    assert lines == ["Denied by ana", "Approved by ana", "Approved by ana"]
    assert not any(b["type"] == "actions" for b in last["blocks"])


async def test_a_denial_with_a_reason_shows_it_on_the_card(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    request_id = await create(hitl)
    await post(http, click("UANA", request_id, "deny"))
    assert slack.posted("views.open")[0]["view"]["blocks"][1]["element"]["multiline"] is True
    values = {"reason": {"value": {"type": "plain_text_input", "value": "too late"}}}
    assert (await post(http, submission("UANA", request_id, "deny", values))).status_code == 200
    (update,) = slack.posted("chat.update")
    assert update["blocks"][-1]["elements"][0]["text"] == "Denied by ana — too late"


async def test_a_form_that_cannot_open_says_so_and_decides_nothing(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    slack, _ = fake
    slack.failures["views.open"] = [Failure(200, {"ok": False, "error": "expired_trigger_id"})]
    request_id = await create(hitl)
    assert (await post(http, click("UANA", request_id, "edit"))).status_code == 200
    (ephemeral,) = slack.posted("chat.postEphemeral")
    assert ephemeral["user"] == "UANA" and "click again" in ephemeral["text"]
    assert (await hitl.state.get(request_id)).status == "pending"  # type: ignore[union-attr]


async def test_a_signed_payload_of_another_shape_is_a_400_and_changes_nothing(
    hitl: Hitl, fake: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    request_id = await create(hitl)
    odd = click("UANA", request_id, "approve")
    odd["user"] = "UANA"  # a string where Slack sends an object
    assert (await post(http, odd)).status_code == 400
    _, headers = signed({})
    assert (await http.post(URL, content=b"nopayload=1", headers=headers)).status_code == 401  # body differs
    not_form = b"payload=%5B1%5D"  # a JSON list
    _, headers = signed({})
    headers["x-slack-signature"] = sign(SIGNING_SECRET, headers["x-slack-request-timestamp"], not_form)
    assert (await http.post(URL, content=not_form, headers=headers)).status_code == 400
    assert (await http.get(URL)).status_code == 405
    assert (await hitl.state.get(request_id)).status == "pending"  # type: ignore[union-attr]
