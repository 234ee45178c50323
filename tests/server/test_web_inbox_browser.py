"""The web inbox end to end in a real headless Chromium (Debian's `chromium`, driven by Playwright).

A real uvicorn server on a loopback port, a StreamState on the plugin's real Redis, reviewers added with
the CLI itself. Writes the README's screenshots (`docs/inbox-list.png`, `docs/inbox-request.png`).
Chromium missing is a failure with the command to install it, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hitl_streams import StreamState
from hitl_streams.results import Resolved
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy

from .conftest import resume_queue_for
from .support import API, Resumed, served

pytestmark = pytest.mark.redis

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
SHOTS_ENV = "HITL_UPDATE_SCREENSHOTS"
"""With `HITL_UPDATE_SCREENSHOTS=1` the test writes the README's pictures into docs/; otherwise it takes them
all the same, into a temporary directory, so a test run does not change the checkout."""


def shots_dir(tmp_path: Path) -> Path:
    return DOCS if os.environ.get(SHOTS_ENV) == "1" else tmp_path


SECRET = "internal-secret"
LINK = re.compile(r"\S*/inbox/login\?token=\S+")

DEPLOY_ACTIONS = [
    {
        "id": "approve",
        "label": "Approve",
        "submitLabel": "Approve deploy",
        "fields": {
            "note": {"kind": "text", "label": "Note for the release log"},
            "window": {"kind": "select", "label": "Deploy window", "options": ["now", "tonight", "weekend"]},
            "notify": {"kind": "confirm", "label": "Tell #releases", "default": True},
        },
    },
    {"id": "deny", "label": "Reject", "fields": {"reason": {"kind": "textarea", "label": "Reason"}}},
]
SIMPLE_ACTIONS = [{"id": "approve"}, {"id": "deny"}]
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]


def chromium_or_fail() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}; install it with: {INSTALL}", pytrace=False)


async def cli(*args: str) -> str:
    """Run the `hitl-streams` command itself; its output."""
    command = str(Path(sys.executable).parent / "hitl-streams")
    process = await asyncio.create_subprocess_exec(
        command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def add_reviewer(name: str, namespaces: str, email: str, base: str, redis_url: str, table: str) -> str:
    out = await cli(
        "reviewers",
        "add",
        name,
        "--namespaces",
        namespaces,
        "--email",
        email,
        "--public-url",
        base,
        "--redis-url",
        redis_url,
        "--table",
        table,
    )
    found = LINK.search(out)
    assert found is not None, out
    assert found.group(0).startswith(f"{base}/inbox/login?token=")
    return found.group(0)


async def create(http: httpx.AsyncClient, token: str, message: str, namespace: str, **extra: Any) -> str:
    body = {"token": token, "message": message, "namespace": namespace, "actions": SIMPLE_ACTIONS, **extra}
    reply = await http.post(f"{API}/requests", json=body, headers={"authorization": f"Bearer {SECRET}"})
    assert reply.status_code == 201, reply.text
    request_id: str = reply.json()["id"]
    return request_id


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    chromium_or_fail()
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - dev extra
        pytest.fail("Playwright is missing: pip install -e '.[dev]'", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def test_a_reviewer_added_with_the_cli_signs_in_decides_and_the_workflow_resumes(
    browser: Any, redis: Redis, redis_url: str, table_name: str, tmp_path: Path
) -> None:
    shots = shots_dir(tmp_path)
    state = StreamState(redis, table_name=table_name)
    resumed = Resumed()
    hitl = Hitl(
        state=state,
        resolver=CallbackResolver(resumed),
        secret=SECRET,
        retry=RetryPolicy(initial=0.01, maximum=0.05, jitter=0),
        resume_queue=resume_queue_for(state),
        inbox=True,
    )
    opened: list[Any] = []
    async with served(hitl.asgi) as base, httpx.AsyncClient(base_url=base) as http:
        try:
            context = {
                "service": "payments-api",
                "version": "2.3.0",
                "changes": ["idempotent refunds", "faster settlement export"],
                "canary": {"errorRate": 0.002, "p99Ms": 184},
            }
            deploy = await create(
                http,
                "wf-deploy",
                "Deploy payments-api 2.3.0 to production?",
                "ops",
                context=context,
                actions=DEPLOY_ACTIONS,
            )
            await create(http, "wf-refund", "Refund order #4411 (EUR 129.00) to Jane Cooper?", "billing")
            await create(http, "wf-quota", "Raise the API quota of acme-corp to 50k requests/min?", "ops")
            await create(http, "wf-invoice", "Send the November invoice run (312 invoices)?", "billing")
            await create(http, "wf-payroll", "Run the November payroll?", "finance")  # not alice's

            alice_link = await add_reviewer("alice", "ops,billing", "alice@example.com", base, redis_url, table_name)
            bob_link = await add_reviewer("bob", "ops", "bob@example.com", base, redis_url, table_name)

            dialogs: list[str] = []
            console: list[str] = []  # a blocked injection would show as a Content Security Policy error

            async def new_page() -> Any:
                context = await browser.new_context(viewport={"width": 1000, "height": 760}, device_scale_factor=1)
                opened.append(context)
                page = await context.new_page()

                async def on_dialog(dialog: Any) -> None:
                    dialogs.append(dialog.message)
                    await dialog.dismiss()

                page.on("dialog", on_dialog)
                page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
                return page

            # --- alice signs in with her link: a GET shows a button; only the POST uses the link ----------
            alice = await new_page()
            await alice.goto(alice_link)
            await alice.get_by_role("button", name="Sign in").click()
            await alice.wait_for_url(f"{base}/inbox/")
            rows = alice.locator(".row-message")
            await rows.first.wait_for()
            shown = await rows.all_inner_texts()
            assert "Deploy payments-api 2.3.0 to production?" in shown
            assert "Refund order #4411 (EUR 129.00) to Jane Cooper?" in shown
            assert "Run the November payroll?" not in shown  # finance is not hers
            chips = await alice.locator('ul[aria-label="Namespace"] a').all_inner_texts()
            assert chips == ["All namespaces", "billing", "ops"]
            await alice.locator(".who-name").wait_for()
            await alice.set_viewport_size({"width": 1000, "height": 560})  # the list, without a blank tail
            await alice.screenshot(path=str(shots / "inbox-list.png"), full_page=True)
            await alice.set_viewport_size({"width": 1000, "height": 760})
            # Created after the screenshot, so the README's picture shows ordinary requests.
            hostile = await create(
                http,
                "wf-hostile",
                " ".join(XSS),
                "ops",
                context={XSS[0]: XSS[1], "link": XSS[2], XSS[1]: [XSS[2]]},
                # The HTTP API bounds action ids (hitl_streams.limits); labels and field keys carry the payloads.
                actions=[{"id": "approve", "label": XSS[0], "fields": {XSS[2]: {"kind": "text", "label": XSS[1]}}}],
            )

            await alice.get_by_role("link", name="billing", exact=True).click()
            assert set(await rows.all_inner_texts()) == {
                "Refund order #4411 (EUR 129.00) to Jane Cooper?",
                "Send the November invoice run (312 invoices)?",
            }

            # --- the list refreshes by itself (server-sent events), without a reload -----------------------
            await alice.locator("#live").wait_for()  # shown by inbox.js once the event stream is open
            await alice.evaluate("window.notReloaded = true")
            await create(http, "wf-live", "Approve the EUR 40 goodwill credit for order #4502?", "billing")
            await alice.get_by_text("Approve the EUR 40 goodwill credit for order #4502?").wait_for(timeout=20_000)
            assert await alice.evaluate("window.notReloaded") is True
            assert await alice.locator(".pending-count").inner_text() == "3"

            # --- bob opens the same request before alice decides -------------------------------------------
            bob = await new_page()
            await bob.goto(bob_link)
            await bob.get_by_role("button", name="Sign in").click()
            await bob.wait_for_url(f"{base}/inbox/")
            await bob.goto(f"{base}/inbox/requests/{deploy}")

            # --- alice opens it, fills a text field and a select, decides -----------------------------------
            await alice.goto(f"{base}/inbox/")
            await alice.get_by_text("Deploy payments-api 2.3.0 to production?").click()
            await alice.wait_for_url(f"{base}/inbox/requests/{deploy}")
            assert "payments-api" in await alice.locator("dl.context").inner_text()
            await alice.get_by_label("Note for the release log").fill("Canary clean for 2h, shipping.")
            await alice.get_by_label("Deploy window").select_option("tonight")
            await alice.evaluate("window.scrollTo(0, 0)")
            await alice.screenshot(path=str(shots / "inbox-request.png"), full_page=True)
            assert (shots / "inbox-request.png").stat().st_size > 10_000
            await alice.get_by_role("button", name="Approve deploy").click()
            await alice.wait_for_url(f"{base}/inbox/requests/{deploy}")
            outcome = await alice.locator("#outcome").inner_text()
            assert "approve" in outcome.lower() and "alice" in outcome and "Canary clean for 2h, shipping." in outcome
            assert await alice.locator("form button", has_text="Approve deploy").count() == 0  # the form is gone
            audit = await alice.locator("#audit").inner_text()
            assert "Decided: Approve (edited)" in audit and "alice <alice@example.com>" in audit

            # --- the workflow was resumed with that decision -------------------------------------------------
            await resumed.wait_for(1, within=10)
            token, result = resumed.calls[0]
            assert token == "wf-deploy" and isinstance(result, Resolved)
            assert result.feedbacks == {"note": "Canary clean for 2h, shipping.", "window": "tonight", "notify": True}
            assert result.by is not None and result.by.name == "alice" and result.by.email == "alice@example.com"

            # --- bob's stale form: a clear conflict, nothing recorded ---------------------------------------
            await bob.get_by_label("Reason").fill("Not during the freeze")
            await bob.get_by_role("button", name="Reject").click()
            notice = await bob.get_by_role("alert").inner_text()
            assert "Already decided by alice (Approve)" in notice
            record = await hitl.inbox.get(deploy)
            assert record is not None and isinstance(record.result, Resolved) and record.result.action_id == "approve"

            # --- hostile strings render as text; nothing runs -----------------------------------------------
            await alice.goto(f"{base}/inbox/requests/{hostile}")
            assert await alice.locator("h1.message").inner_text() == " ".join(XSS)
            context_text = await alice.locator("dl.context").inner_text()
            assert all(payload in context_text for payload in XSS)
            assert await alice.locator("form.action legend").inner_text() == XSS[0]
            assert await alice.locator("form.action label").inner_text() == XSS[1]
            assert await alice.locator("img").count() == 0
            assert await alice.locator('a[href^="javascript:"]').count() == 0
            scripts = await alice.locator("script").evaluate_all("(nodes) => nodes.map((n) => n.src)")
            assert scripts == [f"{base}/inbox/static/inbox.js"]
            await alice.goto(f"{base}/inbox/?status=all")
            assert await alice.locator("img").count() == 0
            assert dialogs == []
            assert not [line for line in console if "Content Security Policy" in line], console

            # --- a form posted without its CSRF token is refused; nothing changes ---------------------------
            await alice.goto(f"{base}/inbox/requests/{hostile}")
            await alice.locator("form.action input[name=csrf]").evaluate("(input) => input.remove()")
            await alice.locator("form.action button").click()
            await alice.get_by_role("heading", name="Refused").wait_for()
            assert "CSRF" in await alice.locator("main").inner_text()
            pending = await hitl.inbox.get(hostile)
            assert pending is not None and pending.status == "pending"
            assert dialogs == []
        finally:  # close the pages (and their live event streams) before the server stops
            for context in opened:
                await context.close()
