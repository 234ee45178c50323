"""`require_approval`: approve (with edits), deny, timeout, custom actions, any client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_streams import Hitl, Resolved, TimedOut, actions, field
from hitl_streams.client import ApprovalDenied, ApprovalTimedOut, HitlError, ValidationError, require_approval
from hitl_streams.testing import TestHitl, create_test_hitl


class Mailer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []


@pytest.fixture
def t() -> TestHitl:
    return create_test_hitl()


async def the_request(hitl: Hitl) -> Any:
    for _ in range(1000):
        page = await hitl.inbox.list()
        if page.items:
            return page.items[0]
        await asyncio.sleep(0)
    raise AssertionError("no request was created")


def gated_mailer(t: TestHitl, mailer: Mailer, **options: Any) -> Any:
    @require_approval(t.client, **options)
    async def send_email(to: str, subject: str, body: str = "Hello", retries: int = 3) -> str:
        mailer.sent.append({"to": to, "subject": subject, "body": body, "retries": retries})
        return f"sent to {to}"

    return send_email


async def test_approve_with_edits_runs_with_the_edited_arguments(t: TestHitl) -> None:
    mailer = Mailer()
    send_email = gated_mailer(t, mailer)
    call = asyncio.ensure_future(send_email("ana@example.com", subject="Invoice"))
    request = await the_request(t.hitl)
    assert request.context == {
        "function": "gated_mailer.<locals>.send_email",
        "arguments": {"to": "ana@example.com", "subject": "Invoice", "body": "Hello", "retries": 3},
    }
    assert (
        request.message
        == "Approve gated_mailer.<locals>.send_email(to='ana@example.com', subject='Invoice', body='Hello', retries=3)?"
    )
    approve = request.actions[0]
    assert approve.id == "approve" and list(approve.fields) == ["to", "subject", "body"]  # str arguments only
    assert [a.id for a in request.actions] == ["approve", "deny"]
    await t.hitl.inbox.resolve(request.id, action_id="approve", feedbacks={"subject": "Invoice #42"})
    assert await call == "sent to ana@example.com"
    assert mailer.sent == [{"to": "ana@example.com", "subject": "Invoice #42", "body": "Hello", "retries": 3}]
    assert send_email.__name__ == "send_email"  # functools.wraps: frameworks still see the function


async def test_deny_raises_with_the_result_and_does_not_run(t: TestHitl) -> None:
    mailer = Mailer()
    send_email = gated_mailer(t, mailer, message="Send the invoice?")
    call = asyncio.ensure_future(send_email("ana@example.com", "Invoice"))
    request = await the_request(t.hitl)
    assert request.message == "Send the invoice?"
    await t.hitl.inbox.resolve(request.id, action_id="deny", feedbacks={"reason": "wrong customer"})
    with pytest.raises(ApprovalDenied) as denied:
        await call
    assert isinstance(denied.value, HitlError)
    assert isinstance(denied.value.result, Resolved)
    assert denied.value.result.feedbacks == {"reason": "wrong customer"}
    assert str(denied.value) == f'Request "{request.id}" was not approved (action "deny"): wrong customer'
    assert mailer.sent == []


async def test_timeout_raises_approval_timed_out(t: TestHitl) -> None:
    mailer = Mailer()
    send_email = gated_mailer(t, mailer, timeout="15m", namespace="mail")
    call = asyncio.ensure_future(send_email("ana@example.com", "Invoice"))
    assert await t.flush_sleep() == 900.0
    with pytest.raises(ApprovalTimedOut) as timed_out:
        await call
    assert isinstance(timed_out.value.result, TimedOut)
    record = await t.hitl.inbox.get(timed_out.value.result.id)
    assert record is not None and record.namespace == "mail"
    assert mailer.sent == []


async def test_custom_actions_and_a_client_factory(t: TestHitl) -> None:
    ran: list[tuple[str, bool]] = []
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return t.client

    @require_approval(
        factory,
        actions=actions()
        .approve(fields={"dry_run": field.confirm(label="Dry run?", default=True)})
        .custom("later")
        .build(),
        message=lambda arguments: f"Migrate {arguments['table']}?",
    )
    async def migrate(table: str, *, dry_run: bool = True) -> None:
        ran.append((table, dry_run))

    first = asyncio.ensure_future(migrate("users"))
    request = await the_request(t.hitl)
    assert request.message == "Migrate users?"
    await t.hitl.inbox.resolve(request.id, action_id="approve", feedbacks={"dry_run": False})
    await first
    assert ran == [("users", False)]

    second = asyncio.ensure_future(migrate("orders"))
    for _ in range(1000):
        if await t.hitl.inbox.count(status="pending"):
            break
        await asyncio.sleep(0)
    pending = (await t.hitl.inbox.list(status="pending")).items[0]
    await t.hitl.inbox.resolve(pending.id, action_id="later")
    with pytest.raises(ApprovalDenied) as denied:
        await second
    assert denied.value.result.action_id == "later"
    assert ran == [("users", False)] and len(made) == 2


async def test_arguments_msgspec_cannot_encode_show_as_repr(t: TestHitl) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    @require_approval(t.client)
    async def use(thing: Any, tags: set[str]) -> None:
        return None

    call = asyncio.ensure_future(use(Opaque(), {"a"}))
    request = await the_request(t.hitl)
    assert request.context == {"function": use.__qualname__, "arguments": {"thing": "<Opaque>", "tags": ["a"]}}
    await t.hitl.inbox.resolve(request.id, action_id="approve")
    await call


def test_mistakes_are_validation_errors(t: TestHitl) -> None:
    with pytest.raises(ValidationError, match="async"):

        @require_approval(t.client)
        def not_async() -> None:  # type: ignore[type-var]
            return None

    with pytest.raises(ValidationError, match='"approve"'):
        require_approval(t.client, actions=actions().deny().build())
    with pytest.raises(ValidationError, match="HitlClient"):
        require_approval("not a client")  # type: ignore[arg-type]


async def test_works_with_the_in_process_client() -> None:
    hitl = Hitl(secret="")

    @require_approval(hitl.client(), timeout="1m")
    async def delete(path: str) -> str:
        return f"deleted {path}"

    call = asyncio.ensure_future(delete("/tmp/x"))
    request = await the_request(hitl)
    await hitl.inbox.resolve(request.id, action_id="approve", feedbacks={"path": "/tmp/y"})
    assert await asyncio.wait_for(call, 5) == "deleted /tmp/y"
