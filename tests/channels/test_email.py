"""The e-mail channel against a local SMTP server (aiosmtpd on a free loopback port): the message (text
and HTML, escaped), its links (a GET decides nothing; the reviewer confirms with the form), replies in
the same thread, destinations, and the inbox fallback; on every State."""

from __future__ import annotations

import email
import email.message
import email.policy
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from hitl_streams import State
from hitl_streams.channels._retry import RetryPolicy
from hitl_streams.channels.email import EmailChannel
from hitl_streams.history import events as ev
from hitl_streams.reviewers import ReviewerDirectory
from hitl_streams.server import Hitl
from hitl_streams.server.wire import parse_create_request, parse_remind
from tests.server.conftest import resume_queue_for
from tests.server.support import free_port
from tests.server.web_support import csrf_of, sign_in

ACTIONS: list[dict[str, Any]] = [
    {"id": "approve"},
    {"id": "deny", "label": "Deny <now>", "fields": {"reason": {"kind": "textarea", "label": "Reason"}}},
]
PUBLIC = "https://hitl.example.com"


class Mailbox:
    """An aiosmtpd handler keeping every message; `refuse` answers the next DATA commands with it."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def hitl(state: State, smtp: tuple[Mailbox, int]) -> AsyncIterator[Hitl]:
    channel = EmailChannel(
        smtp_url=f"smtp://127.0.0.1:{smtp[1]}",
        mail_from="HITL <hitl@example.com>",
        public_url=PUBLIC,
        link_secret="link-secret",
        retry=RetryPolicy(attempts=3, base=0.01, cap=0.02),
    )
    server = Hitl(state=state, adapters=[channel], secret="", resume_queue=resume_queue_for(state), inbox=True)
    directory = server.state.reviewers  # type: ignore[attr-defined]
    assert isinstance(directory, ReviewerDirectory)
    await directory.add("ana", namespaces=["billing"], email="ana@example.com")
    await directory.add("eve", namespaces=["ops"], email="eve@example.com")
    await directory.add("lead", namespaces=["*"], email="lead@example.com")
    await directory.add("nomail", namespaces=["billing"])
    async with server:
        yield server


def channel_of(hitl: Hitl) -> EmailChannel:
    found = hitl.adapters[0]
    assert isinstance(found, EmailChannel)
    return found


async def create(hitl: Hitl, token: str = "t1", **extra: Any) -> str:
    body = parse_create_request(
        {
            "token": token,
            "message": "Refund <b>42</b> EUR & close?",
            "actions": ACTIONS,
            "namespace": "billing",
            "context": {"customer": "<ACME>", "amount": 42},
            **extra,
        }
    )
    return (await hitl.core.create_request(body)).id


def parts(mail: email.message.EmailMessage) -> tuple[str, str]:
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


async def test_the_message_has_text_and_escaped_html_with_one_signed_link_per_action(
    hitl: Hitl, smtp: tuple[Mailbox, int]
) -> None:
    box, _ = smtp
    request_id = await create(hitl)
    ((recipients, mail),) = box.messages
    assert sorted(recipients) == ["ana@example.com", "lead@example.com"]  # the namespace's reviewers with e-mail
    assert mail["Message-ID"] == f"<hitl.{request_id}@hitl.example.com>"
    assert mail["Subject"] == "Refund <b>42</b> EUR & close?" and mail["In-Reply-To"] is None
    text, html = parts(mail)
    assert "Refund <b>42</b> EUR & close?" in text and "customer: <ACME>" in text
    assert "Refund &lt;b&gt;42&lt;/b&gt; EUR &amp; close?" in html and "&lt;ACME&gt;" in html
    assert "<b>" not in html and "<ACME>" not in html and "Deny &lt;now&gt;" in html
    channel = channel_of(hitl)
    for action_id in ("approve", "deny"):
        link = channel.link(request_id, action_id)
        assert link.startswith(f"{PUBLIC}/inbox/requests/{request_id}?action={action_id}&sig=")
        assert link in text and link.replace("&", "&amp;") in html
        sig = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["sig"][0]
        assert channel.verify_link(request_id, action_id, sig)
        assert not channel.verify_link(request_id, "approve" if action_id == "deny" else "deny", sig)
    record = await hitl.state.get(request_id)
    assert record is not None and record.external_id == mail["Message-ID"]


async def test_a_link_decides_nothing_by_get_and_the_form_decides(hitl: Hitl, smtp: tuple[Mailbox, int]) -> None:
    box, _ = smtp
    request_id = await create(hitl)
    link = channel_of(hitl).link(request_id, "approve")
    path = link[len(PUBLIC) :]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url=PUBLIC) as http:
        anonymous = await http.get(path)  # a mail scanner following the link
        assert anonymous.status_code == 303 and anonymous.headers["location"].endswith("/inbox/login")
        reviewers = hitl.state.reviewers  # type: ignore[attr-defined]
        await sign_in(http, (await reviewers.issue("ana", "link")).token)
        page = await http.get(path)
        assert page.status_code == 200 and "Refund &lt;b&gt;42&lt;/b&gt;" in page.text
        assert (await hitl.state.get(request_id)).status == "pending"  # type: ignore[union-attr]
        done = await http.post(
            f"/inbox/requests/{request_id}/decide", data={"csrf": csrf_of(page.text), "action": "approve"}
        )
        assert done.status_code == 303
    record = await hitl.state.get(request_id)
    assert record is not None and record.result is not None and record.result.by.name == "ana"  # type: ignore[union-attr]
    # The outcome follows in the thread.
    _, outcome = box.messages[-1]
    assert outcome["In-Reply-To"] == f"<hitl.{request_id}@hitl.example.com>"
    assert parts(outcome)[0].startswith("Approved by ana")


async def test_a_reminder_and_an_escalation_reply_in_the_same_thread(hitl: Hitl, smtp: tuple[Mailbox, int]) -> None:
    box, _ = smtp
    request_id = await create(hitl)
    await hitl.core.remind(request_id, parse_remind({"kind": "remind", "message": "Still <waiting>"}))
    await hitl.core.remind(request_id, parse_remind({"kind": "escalate", "channel": "email"}))
    (_, first), (to, reminder), (_, escalation) = box.messages
    thread = first["Message-ID"]
    for reply in (reminder, escalation):
        assert reply["In-Reply-To"] == thread and reply["References"] == thread
        assert reply["Message-ID"] != thread and reply["Subject"] == "Re: " + first["Subject"]
    assert sorted(to) == ["ana@example.com", "lead@example.com"]
    text, html = parts(reminder)
    assert text.startswith("Still <waiting>") and "Still &lt;waiting&gt;" in html
    assert f"{PUBLIC}/inbox/requests/{request_id}" in text


async def test_a_destination_names_the_recipients(hitl: Hitl, smtp: tuple[Mailbox, int]) -> None:
    box, _ = smtp
    request_id = await create(hitl, channel="email:ops@example.com")
    await hitl.core.remind(request_id, parse_remind({"kind": "remind"}))
    (to, _), (again, reply) = box.messages
    assert to == again == ["ops@example.com"]
    assert reply["In-Reply-To"] == f"<hitl.{request_id}@hitl.example.com>"


async def test_a_refused_delivery_leaves_the_request_to_the_inbox_and_is_audited(
    hitl: Hitl, smtp: tuple[Mailbox, int]
) -> None:
    box, _ = smtp
    box.refuse = ["451 try again later", "550 mailbox unavailable"]  # transient, then permanent
    request_id = await create(hitl)
    record = await hitl.state.get(request_id)
    assert record is not None and record.status == "pending" and box.messages == []
    audit = [r.event for r in await hitl.state.audit(request_id)]  # type: ignore[attr-defined]
    failed = [e for e in audit if isinstance(e, ev.ChannelFailed)]
    assert len(failed) == 1 and failed[0].fallback == "inbox" and "550" in failed[0].error
    assert [r.id for r in (await hitl.inbox.list(status="pending")).items] == [request_id]
