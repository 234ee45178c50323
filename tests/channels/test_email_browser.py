"""An e-mail's link opened in a real headless Chromium: the reviewer signs in, comes back through the
link, and the form (not the link) decides; the outcome follows in the mail thread."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from hitl_streams import StreamState
from hitl_streams.channels._retry import RetryPolicy
from hitl_streams.channels.email import EmailChannel
from hitl_streams.results import Resolved
from hitl_streams.reviewers import sign_in_link
from hitl_streams.server import Hitl
from hitl_streams.server.wire import parse_create_request
from tests.server.conftest import resume_queue_for
from tests.server.support import free_port, served
from tests.server.test_web_inbox_browser import browser  # noqa: F401 (the Chromium fixture)

from .test_email import Mailbox, parts

pytestmark = pytest.mark.redis
LINK = re.compile(r"Approve: (\S+)")


async def test_an_email_link_leads_to_the_form_that_decides(
    browser: Any,  # noqa: F811
    redis: Redis,
    table_name: str,
) -> None:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    state = StreamState(redis, table_name=table_name)
    channel = EmailChannel(
        smtp_url=f"smtp://127.0.0.1:{controller.port}",
        mail_from="hitl@example.com",
        public_url="http://placeholder.invalid",  # the real base once uvicorn has its port
        link_secret="link-secret",
        domain="hitl.test",
        retry=RetryPolicy(attempts=2, base=0.01),
    )
    hitl = Hitl(state=state, adapters=[channel], secret="", resume_queue=resume_queue_for(state), inbox=True)
    try:
        async with served(hitl.asgi) as base:
            channel.public_url = base
            await state.reviewers.add("ana", namespaces=["billing"], email="ana@example.com")
            body = parse_create_request(
                {
                    "token": "wf-1",
                    "message": "Refund order #4411 to <Jane>?",
                    "namespace": "billing",
                    "actions": [{"id": "approve"}, {"id": "deny"}],
                }
            )
            request_id = (await hitl.core.create_request(body)).id
            ((_, mail),) = box.messages
            found = LINK.search(parts(mail)[0])
            assert found is not None
            link = found.group(1)
            assert link.startswith(f"{base}/inbox/requests/{request_id}?action=approve&sig=")

            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(link)  # signed out: the page asks to sign in; nothing is decided
            assert page.url.startswith(f"{base}/inbox/login")
            assert (await state.get(request_id)).status == "pending"  # type: ignore[union-attr]
            await page.goto(sign_in_link((await state.reviewers.issue("ana", "link")).token, base))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/inbox/")
            await page.goto(link)  # back through the e-mail's link
            await page.locator("h1.message").wait_for()
            assert await page.locator("h1.message").inner_text() == "Refund order #4411 to <Jane>?"
            assert (await state.get(request_id)).status == "pending"  # type: ignore[union-attr]
            await page.get_by_role("button", name="Approve", exact=True).click()
            await page.locator("#outcome").wait_for()
            await context.close()
        record = await state.get(request_id)
        assert record is not None and isinstance(record.result, Resolved)
        assert record.result.action_id == "approve" and record.result.by is not None
        assert record.result.by.name == "ana"
        (_, outcome) = box.messages[-1]
        assert outcome["In-Reply-To"] == f"<hitl.{request_id}@hitl.test>"
        assert parts(outcome)[0].startswith("Approved by ana")
    finally:
        controller.stop()
