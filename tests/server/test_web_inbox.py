"""The web inbox through its ASGI app, on InMemoryState and StreamState: pages, filters, paging,
decisions, conflicts, CSRF, cookies, security headers, escaping, scope and mounting."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitl_streams import InMemoryState, State, StreamState
from hitl_streams.results import Resolved
from hitl_streams.server import CallbackResolver, Hitl
from hitl_streams.server.inbox_settings import InboxSettings
from hitl_streams.server.web import TRUST_PROTO_ENV, WebInbox
from hitl_streams.server.web_pages import MISSING_JINJA2

from .support import API, Resumed
from .web_support import Site, client, csrf_of, sign_in, site

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture(params=["memory", "redis-streams"])
def web_state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return InMemoryState()
    return StreamState(request.getfixturevalue("redis"), table_name=request.getfixturevalue("table_name"))


@pytest.fixture
async def web(web_state: State, resumed: Resumed) -> AsyncIterator[Site]:
    async with site(web_state, resumed) as built:
        yield built


@pytest.fixture
async def http(web: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with client(web.app) as http:
        yield http


async def alice(web: Site, http: httpx.AsyncClient) -> None:
    await sign_in(http, await web.add_reviewer("alice", ["ops", "hr"], "alice@example.com"))


def form_of(html: str, action_id: str) -> str:
    """The HTML of the decision form of one action."""
    for form in re.findall(r"<form .*?</form>", html, re.S):
        if f'name="action" value="{action_id}"' in form:
            return str(form)
    raise AssertionError(f"no form for {action_id}")


# --- sign-in, sessions, cookies -----------------------------------------------------------------------
async def test_signed_out_pages_redirect_to_sign_in_and_posts_get_401(web: Site, http: httpx.AsyncClient) -> None:
    for path in ("/inbox/", "/inbox", "/inbox/requests/x", "/inbox/batches/x"):
        reply = await http.get(path)
        assert reply.status_code == 303 and reply.headers["location"] == "/inbox/login", path
    page = await http.get("/inbox/login")
    assert page.status_code == 200 and "Sign in with your link" in page.text
    assert "<form" not in page.text
    assert (await http.post("/inbox/requests/x/decide", data={"action": "approve"})).status_code == 401
    assert (await http.post("/inbox/logout")).status_code == 401


async def test_only_the_post_consumes_a_link(web: Site, http: httpx.AsyncClient) -> None:
    link = await web.add_reviewer("alice", ["ops"])
    for _ in range(2):  # a mail scanner fetching the link burns nothing
        page = await http.get("/inbox/login", params={"token": link})
        assert page.status_code == 200 and 'type="submit"' in page.text and "Sign in" in page.text
    assert 'name="token"' in page.text
    done = await http.post("/inbox/login", data={"token": link, "csrf": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/inbox/"
    assert (await http.get("/inbox/")).status_code == 200
    # Used once: a second exchange is refused.
    page = await http.get("/inbox/login", params={"token": link})
    again = await http.post("/inbox/login", data={"token": link, "csrf": csrf_of(page.text)})
    assert again.status_code == 401 and "already used" in again.text


async def test_sign_in_post_needs_its_csrf_token_and_the_pre_session_cookie(web: Site) -> None:
    link = await web.add_reviewer("alice", ["ops"])
    async with client(web.app) as http:
        page = await http.get("/inbox/login", params={"token": link})
        csrf = csrf_of(page.text)
        assert (await http.post("/inbox/login", data={"token": link})).status_code == 403
        assert (await http.post("/inbox/login", data={"token": link, "csrf": "0" * 64})).status_code == 403
    async with client(web.app) as other:  # a cross-site post carries no pre-session cookie
        assert (await other.post("/inbox/login", data={"token": link, "csrf": csrf})).status_code == 403
        # Nothing was consumed by the refused posts.
        await sign_in(other, link)


async def test_cookie_flags_over_http_and_https(
    web_state: State, resumed: Resumed, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = iter(f"reviewer{n}" for n in range(10))

    async def signed(web: Site, base_url: str, headers: dict[str, str] | None = None, app: Any = None) -> str:
        link = await web.add_reviewer(next(names), ["ops"])
        async with client(app or web.app, base_url) as http:
            page = await http.get("/inbox/login", params={"token": link}, headers=headers)
            done = await http.post("/inbox/login", data={"token": link, "csrf": csrf_of(page.text)}, headers=headers)
            (session,) = [c for c in done.headers.get_list("set-cookie") if c.startswith("hitl_session=")]
            return session

    forwarded = {"x-forwarded-proto": "https"}
    async with site(web_state, resumed) as web:
        plain = await signed(web, "http://hitl.test")
        assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Path=/inbox" in plain and "Secure" not in plain
        secure = await signed(web, "https://hitl.test")
        assert "HttpOnly" in secure and "SameSite=Lax" in secure and "Secure" in secure
        # X-Forwarded-Proto is ignored unless the proxy is trusted.
        assert "Secure" not in await signed(web, "http://hitl.test", forwarded)
    monkeypatch.setenv(TRUST_PROTO_ENV, "1")
    async with site(web_state, resumed) as trusting:

        async def behind_tls_proxy(scope: Any, receive: Any, send: Any) -> None:
            await trusting.app(dict(scope, scheme="http"), receive, send)  # the browser speaks https to the proxy

        assert "Secure" in await signed(trusting, "https://hitl.test", forwarded, behind_tls_proxy)


async def test_sign_out_ends_the_session(web: Site, http: httpx.AsyncClient) -> None:
    await alice(web, http)
    page = await http.get("/inbox/")
    assert (await http.post("/inbox/logout", data={})).status_code == 403  # no CSRF token: still signed in
    assert (await http.get("/inbox/")).status_code == 200
    out = await http.post("/inbox/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/inbox/login?signed_out=1"
    assert any("Max-Age=0" in c for c in out.headers.get_list("set-cookie"))
    assert (await http.get("/inbox/")).status_code == 303


async def test_security_headers_on_every_page(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(http, message="m", namespace="ops")
    await alice(web, http)
    for path in ("/inbox/", f"/inbox/requests/{rid}", "/inbox/login", "/inbox/requests/nope"):
        reply = await http.get(path)
        assert reply.headers["content-security-policy"] == CSP, path
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "same-origin"
        assert reply.headers["cache-control"] == "no-store"
        assert "<script>" not in reply.text and " style=" not in reply.text and "onclick" not in reply.text
    css = await http.get("/inbox/static/inbox.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = await http.get("/inbox/static/inbox.js")
    assert js.status_code == 200 and "EventSource" in js.text
    assert (await http.get("/inbox/static/../app.py")).status_code == 404


# --- list ---------------------------------------------------------------------------------------------
async def test_list_shows_only_the_reviewers_namespaces_with_filters_and_paging(
    web: Site, http: httpx.AsyncClient
) -> None:
    for n in range(3):
        await web.create(http, message=f"ops-{n}", namespace="ops")
    await web.create(http, message="hr-0", namespace="hr")
    await web.create(http, message="secret-0", namespace="finance")
    await alice(web, http)

    def messages(html: str) -> list[str]:
        return re.findall(r'<span class="row-message">([^<]*)</span>', html)

    seen: list[str] = []
    assert "4</strong> pending" in (await http.get("/inbox/")).text
    page = await http.get("/inbox/", params={"limit": "2"})
    while True:
        assert page.status_code == 200
        got = messages(page.text)
        assert len(got) <= 2
        seen += got
        older = re.search(r'href="([^"]*)" rel="next"', page.text)
        if older is None:
            break
        page = await http.get(older.group(1).replace("&amp;", "&"))
    assert sorted(seen) == ["hr-0", "ops-0", "ops-1", "ops-2"]
    assert "finance" not in (await http.get("/inbox/")).text

    only_hr = await http.get("/inbox/", params={"ns": "hr"})
    assert messages(only_hr.text) == ["hr-0"] and "1</strong> pending in hr" in only_hr.text
    assert (await http.get("/inbox/", params={"ns": "finance"})).status_code == 404
    assert (await http.get("/inbox/", params={"status": "bogus"})).status_code == 400
    assert (await http.get("/inbox/", params={"ns": "ops", "cursor": "%%%"})).status_code == 400

    rid = await web.create(http, message="ops-decided", namespace="ops")
    await decide(http, rid, {"action": "deny", "f:reason": "no"})
    resolved = await http.get("/inbox/", params={"status": "resolved"})
    assert messages(resolved.text) == ["ops-decided"]
    assert "Deny · alice" in resolved.text
    pending = await http.get("/inbox/", params={"status": "pending", "ns": "ops"})
    assert "ops-decided" not in pending.text


async def decide(http: httpx.AsyncClient, rid: str, form: dict[str, Any]) -> httpx.Response:
    page = await http.get(f"/inbox/requests/{rid}")
    return await http.post(f"/inbox/requests/{rid}/decide", data={"csrf": csrf_of(page.text), **form})


# --- request page and decisions -----------------------------------------------------------------------
async def test_request_page_shows_message_context_and_field_forms(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(
        http,
        message="Deploy v2?",
        namespace="ops",
        context={"service": "api", "replicas": 3, "owners": ["ana", "bo"]},
    )
    await alice(web, http)
    page = await http.get(f"/inbox/requests/{rid}")
    assert page.status_code == 200
    html = page.text
    assert "Deploy v2?" in html and ">ops<" in html and ">inbox<" in html and ">pending<" in html
    assert "<dt>service</dt>" in html and "api" in html and "<pre>3</pre>" in html
    assert "<pre>[\n  &#34;ana&#34;,\n  &#34;bo&#34;\n]</pre>" in html
    approve = form_of(html, "approve")
    assert 'method="post"' in approve and f'action="/inbox/requests/{rid}/decide"' in approve
    assert 'name="f:note" value="looks good"' in approve and ">Note</label>" in approve
    assert '<option value="" disabled selected>Choose…</option>' in approve and "required" in approve
    assert '<option value="production">production</option>' in approve
    assert ('name="f:notify" value="false"' in approve and 'value="true"\n' in approve) or "checked" in approve
    deny = form_of(html, "deny")
    assert "<textarea" in deny and ">Reason</label>" in deny
    assert "Approve</button>" in approve and "Deny</button>" in deny
    assert 'id="audit"' in html and "Created" in html


async def test_decide_with_fields_then_the_outcome_replaces_the_form(
    web: Site, http: httpx.AsyncClient, resumed: Resumed
) -> None:
    rid = await web.create(http, message="Deploy", namespace="ops")
    await alice(web, http)
    done = await decide(
        http, rid, {"action": "approve", "f:note": "ship it", "f:env": "production", "f:notify": ["false", "true"]}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/inbox/requests/{rid}"
    twice = await decide_blind_form(
        http, rid, {"action": "approve", "f:note": "ship it", "f:env": "production", "f:notify": ["false", "true"]}
    )
    assert twice.status_code == 303  # a double submit of the same decision lands on the outcome
    page = (await http.get(done.headers["location"])).text
    assert 'name="action"' not in page and "Decide</h2>" not in page
    assert "Decision</h2>" in page and "alice" in page and "ship it" in page and "production" in page
    assert "Decided: Approve (edited)" in page  # the audit trail, with who
    record = await web.hitl.inbox.get(rid)
    assert record is not None and isinstance(record.result, Resolved)
    assert record.result.feedbacks == {"note": "ship it", "env": "production", "notify": True}
    assert record.result.by is not None and record.result.by.name == "alice"
    assert record.result.by.email == "alice@example.com"
    await resumed.wait_for(1)
    assert resumed.calls[0][1] == record.result


async def test_defaults_left_alone_are_not_edited_and_an_unchecked_box_is_false(
    web: Site, http: httpx.AsyncClient
) -> None:
    same = await web.create(
        http,
        message="same",
        namespace="ops",
        actions=[{"id": "approve", "fields": {"n": {"kind": "text", "label": "N", "default": "x"}}}],
    )
    box = await web.create(
        http,
        message="box",
        namespace="ops",
        actions=[{"id": "approve", "fields": {"ok": {"kind": "confirm", "label": "OK", "default": True}}}],
    )
    await alice(web, http)
    assert (await decide(http, same, {"action": "approve", "f:n": "x"})).status_code == 303
    assert (await decide(http, box, {"action": "approve", "f:ok": "false"})).status_code == 303
    first, second = await web.hitl.inbox.get(same), await web.hitl.inbox.get(box)
    assert first is not None and isinstance(first.result, Resolved) and first.result.edited is False
    assert second is not None and isinstance(second.result, Resolved)
    assert second.result.feedbacks == {"ok": False} and second.result.edited is True


async def test_field_errors_are_shown_next_to_their_fields_and_nothing_is_decided(
    web: Site, http: httpx.AsyncClient
) -> None:
    rid = await web.create(http, message="Deploy", namespace="ops")
    await alice(web, http)
    reply = await decide(http, rid, {"action": "approve", "f:note": "kept", "f:env": "moon"})
    assert reply.status_code == 400
    approve = form_of(reply.text, "approve")
    assert 'aria-invalid="true"' in approve and 'class="field invalid"' in approve
    assert "must be one of: staging, production" in approve
    assert 'value="kept"' in approve  # what the reviewer typed is kept
    unknown = await decide(http, rid, {"action": "launch"})
    assert unknown.status_code == 400 and "Unknown action &#34;launch&#34;." in unknown.text
    record = await web.hitl.inbox.get(rid)
    assert record is not None and record.status == "pending"


async def test_a_conflicting_second_decision_says_who_decided(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(http, message="Deploy", namespace="ops")
    await alice(web, http)
    async with client(web.app) as bob:
        await sign_in(bob, await web.add_reviewer("bob", ["ops"]))
        stale = await bob.get(f"/inbox/requests/{rid}")  # bob opened the page before alice decided
        assert (await decide(http, rid, {"action": "deny", "f:reason": "not now"})).status_code == 303
        late = await bob.post(
            f"/inbox/requests/{rid}/decide",
            data={"csrf": csrf_of(stale.text), "action": "approve", "f:env": "staging"},
        )
    assert late.status_code == 409
    assert "Already decided by alice (Deny). Your decision was not recorded." in late.text
    assert 'name="action"' not in late.text
    record = await web.hitl.inbox.get(rid)
    assert record is not None and isinstance(record.result, Resolved) and record.result.action_id == "deny"


async def test_csrf_refusal_changes_nothing(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(http, message="Deploy", namespace="ops")
    await alice(web, http)
    form = {"action": "deny", "f:reason": "x"}
    assert (await http.post(f"/inbox/requests/{rid}/decide", data=form)).status_code == 403
    forged = await http.post(f"/inbox/requests/{rid}/decide", data={**form, "csrf": "a" * 64})
    assert forged.status_code == 403 and "CSRF" in forged.text
    async with client(web.app) as bob:  # a token from another session does not work either
        await sign_in(bob, await web.add_reviewer("bob", ["ops"]))
        bobs = csrf_of((await bob.get("/inbox/")).text)
    assert (await http.post(f"/inbox/requests/{rid}/decide", data={**form, "csrf": bobs})).status_code == 403
    record = await web.hitl.inbox.get(rid)
    assert record is not None and record.status == "pending"
    assert (await http.get("/inbox/")).status_code == 200


async def test_outside_the_reviewers_namespaces_a_request_does_not_exist(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(http, message="payroll", namespace="finance")
    await alice(web, http)
    page = await http.get(f"/inbox/requests/{rid}")
    assert page.status_code == 404 and "payroll" not in page.text
    post = await decide_blind(http, rid)
    assert post.status_code == 404
    assert (await http.get("/inbox/requests/unknown-id")).status_code == 404
    record = await web.hitl.inbox.get(rid)
    assert record is not None and record.status == "pending"


async def decide_blind_form(http: httpx.AsyncClient, rid: str, form: dict[str, Any]) -> httpx.Response:
    csrf = csrf_of((await http.get("/inbox/")).text)
    return await http.post(f"/inbox/requests/{rid}/decide", data={"csrf": csrf, **form})


async def decide_blind(http: httpx.AsyncClient, rid: str) -> httpx.Response:
    csrf = csrf_of((await http.get("/inbox/")).text)
    return await http.post(f"/inbox/requests/{rid}/decide", data={"csrf": csrf, "action": "deny", "f:reason": "x"})


PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]


async def test_every_caller_supplied_string_is_escaped(web: Site, http: httpx.AsyncClient) -> None:
    script, img, js = PAYLOADS
    # Through trusted code: the HTTP API refuses such action ids (hitl_streams.limits), the pages must
    # still escape whatever the state holds.
    rid = await web.create_trusted(
        message=f"{script} {img} {js}",
        namespace="ops",
        context={script: img, img: [js, script], "link": js},
        actions=[
            {
                "id": img,
                "label": script,
                "fields": {
                    img: {"kind": "select", "label": script, "options": [img, js, script]},
                    script: {"kind": "text", "label": img, "default": script},
                },
            },
            {"id": js, "label": js},
        ],
    )
    await alice(web, http)
    for path in ("/inbox/", f"/inbox/requests/{rid}"):
        html = (await http.get(path)).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<img" not in html
        assert 'href="javascript:' not in html and 'action="javascript:' not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = (await http.get(f"/inbox/requests/{rid}")).text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    # Decide with the hostile action and field names: they round-trip as data.
    reply = await decide(http, rid, {"action": img, f"f:{img}": js, f"f:{script}": img})
    assert reply.status_code == 303
    record = await web.hitl.inbox.get(rid)
    assert record is not None and isinstance(record.result, Resolved)
    assert record.result.action_id == img and record.result.feedbacks == {img: js, script: img}
    after = (await http.get(f"/inbox/requests/{rid}")).text
    assert "<script>alert" not in after and "<img" not in after


# --- batches, timeline, audit -------------------------------------------------------------------------
async def create_batch(http: httpx.AsyncClient, namespace: str = "ops") -> tuple[str, list[str]]:
    reply = await http.post(
        f"{API}/batches",
        json={
            "message": "Three refunds",
            "namespace": namespace,
            "actions": [{"id": "approve"}, {"id": "deny", "fields": {"why": {"kind": "text", "label": "Why"}}}],
            "items": [{"token": f"b{n}-{namespace}", "message": f"Refund #{n}"} for n in range(3)],
        },
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return body["batchId"], body["ids"]


async def test_batch_page_decides_items_one_by_one_or_all_at_once(web: Site, http: httpx.AsyncClient) -> None:
    batch_id, ids = await create_batch(http)
    await alice(web, http)
    page = await http.get(f"/inbox/batches/{batch_id}")
    assert page.status_code == 200 and "Three refunds" in page.text and "Refund #2" in page.text
    assert "Decide all 3 pending at once" in page.text
    csrf = csrf_of(page.text)
    one = await http.post(f"/inbox/requests/{ids[0]}/decide", data={"csrf": csrf, "action": "approve", "back": "batch"})
    assert one.status_code == 303 and one.headers["location"] == f"/inbox/batches/{batch_id}"
    page = await http.get(f"/inbox/batches/{batch_id}")
    assert "Decide all 2 pending at once" in page.text
    bad = await http.post(f"/inbox/batches/{batch_id}/decide", data={"csrf": csrf, "action": "deny"})
    assert bad.status_code == 400 and "Missing value for feedback" in bad.text
    assert (await http.post(f"/inbox/batches/{batch_id}/decide", data={"action": "approve"})).status_code == 403
    all_at_once = await http.post(
        f"/inbox/batches/{batch_id}/decide", data={"csrf": csrf, "action": "deny", "f:why": "dupes"}
    )
    assert all_at_once.status_code == 303
    results = [await web.hitl.inbox.get(i) for i in ids]
    actions = [r.result.action_id for r in results if r is not None and isinstance(r.result, Resolved)]
    assert actions == ["approve", "deny", "deny"]
    done = (await http.get(f"/inbox/batches/{batch_id}")).text
    assert "Decide all" not in done and 'name="action"' not in done and "dupes" in done


async def test_batch_outside_scope_is_404(web: Site, http: httpx.AsyncClient) -> None:
    batch_id, _ = await create_batch(http, namespace="finance")
    await alice(web, http)
    assert (await http.get(f"/inbox/batches/{batch_id}")).status_code == 404
    csrf = csrf_of((await http.get("/inbox/")).text)
    post = await http.post(f"/inbox/batches/{batch_id}/decide", data={"csrf": csrf, "action": "approve"})
    assert post.status_code == 404


async def test_timeline_and_audit_trail_of_a_request(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(http, message="Deploy", namespace="ops")
    notified = await http.post(f"{API}/notifications", json={"message": "Reminder: <b>soon</b>", "after": {"id": rid}})
    assert notified.status_code == 200, notified.text
    await alice(web, http)
    await decide(http, rid, {"action": "approve", "f:env": "staging"})
    html = (await http.get(f"/inbox/requests/{rid}")).text
    assert "Reminder: &lt;b&gt;soon&lt;/b&gt;" in html
    audit = html[html.index('id="audit"') :]
    rows = re.findall(r"<tr>(.*?)</tr>", audit, re.S)
    assert any("Created" in row for row in rows)
    decided = [row for row in rows if "Decided: Approve" in row]
    assert decided and "alice &lt;alice@example.com&gt;" in decided[0] and "request.resolved" in decided[0]


# --- mounting, limits, live refresh -------------------------------------------------------------------
async def test_links_honour_the_mount_prefix(web_state: State, resumed: Resumed) -> None:
    async with site(web_state, resumed, prefix="/hitl") as mounted, client(mounted.app) as http:
        rid = await mounted.create(http, message="m", namespace="ops")
        assert (await http.get("/hitl/inbox/")).headers["location"] == "/hitl/inbox/login"
        await sign_in(http, await mounted.add_reviewer("alice", ["ops"]), inbox="/hitl/inbox")
        html = (await http.get("/hitl/inbox/")).text
        assert f'href="/hitl/inbox/requests/{rid}"' in html
        assert 'href="/hitl/inbox/static/inbox.css"' in html and 'action="/hitl/inbox/logout"' in html
        assert 'data-live="/hitl/inbox/events?status=pending&amp;v=' in html


async def test_an_oversized_form_is_refused(web: Site, http: httpx.AsyncClient) -> None:
    rid = await web.create(http, message="m", namespace="ops")
    await alice(web, http)
    reply = await http.post(f"/inbox/requests/{rid}/decide", data={"f:note": "x" * 70_000})
    assert reply.status_code == 413


async def test_live_refresh_sends_changed_when_the_list_changes(web: Site, http: httpx.AsyncClient) -> None:
    await alice(web, http)
    assert web.hitl.reviewer_inbox is not None and web.hitl.reviewer_auth is not None
    live = WebInbox(web.hitl.reviewer_inbox, web.hitl.reviewer_auth, live_interval=0.05)
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    page = (await http.get("/inbox/", params={"ns": "ops"})).text
    found = re.search(r'data-live="/inbox/events\?([^"]*)"', page)
    assert found is not None
    query = found.group(1).replace("&amp;", "&").encode()
    assert b"v=" in query and b"ns=ops" in query

    async def stream(
        query: bytes, cookie: str = cookie, extra: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[asyncio.Task[None], list[Any], asyncio.Event, asyncio.Event]:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/inbox/events",
            "root_path": "/inbox",
            "query_string": query,
            "headers": extra or [(b"cookie", cookie.encode())],
        }
        sent: list[dict[str, Any]] = []
        changed, hang_up = asyncio.Event(), asyncio.Event()

        async def receive() -> dict[str, Any]:
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if b"event: changed" in message.get("body", b""):
                changed.set()

        return asyncio.create_task(live(scope, receive, send)), sent, changed, hang_up

    task, sent, changed, hang_up = await stream(query)
    await asyncio.sleep(0.2)
    assert sent[0]["status"] == 200 and not changed.is_set()
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    await web.create(http, message="new one", namespace="ops")
    await asyncio.wait_for(changed.wait(), 5)
    hang_up.set()  # the browser goes away
    await asyncio.wait_for(task, 5)

    # A change between rendering the page and connecting is reported at once (the page's `v` is stale).
    task, sent, changed, hang_up = await stream(query)
    await asyncio.wait_for(changed.wait(), 5)
    hang_up.set()
    await asyncio.wait_for(task, 5)

    # Reconnecting after a change it was told about, the browser sends that event's id: no repeat.
    last_id = re.search(rb"id: (\w+)\n", b"".join(m.get("body", b"") for m in sent))
    assert last_id is not None
    headers_with_id = [(b"cookie", cookie.encode()), (b"last-event-id", last_id.group(1))]
    task, sent, changed, hang_up = await stream(query, extra=headers_with_id)
    await asyncio.sleep(0.3)
    assert not changed.is_set()
    hang_up.set()
    await asyncio.wait_for(task, 5)

    task, sent, _, _ = await stream(query, cookie="")
    await asyncio.wait_for(task, 5)
    assert sent[0]["status"] == 401


async def test_the_inbox_also_answers_under_the_base_path(web: Site, http: httpx.AsyncClient) -> None:
    inbox = f"{API}/inbox"
    assert (await http.get(f"{inbox}/")).headers["location"] == f"{inbox}/login"
    await sign_in(http, await web.add_reviewer("alice", ["ops"]), inbox=inbox)
    html = (await http.get(f"{inbox}/")).text
    assert f'href="{inbox}/static/inbox.css"' in html


async def test_without_jinja2_only_the_json_api_is_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, resumed: Resumed
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jinja2" else real(name, *a))
    with caplog.at_level(logging.WARNING, logger="hitl_streams.server"):
        async with site(InMemoryState(), resumed) as bare, client(bare.app) as http:
            assert (await http.get("/inbox/login")).status_code == 404
            assert (await http.get("/inbox/api/requests")).status_code == 401
    assert MISSING_JINJA2 in caplog.text


async def test_without_the_inbox_setting_there_are_no_pages(resumed: Resumed) -> None:
    hitl = Hitl(state=InMemoryState(), secret="")
    async with client(hitl.asgi) as http:
        assert (await http.get("/inbox/login")).status_code == 404
        assert (await http.get("/inbox/")).status_code == 404


def test_the_readme_web_inbox_section_matches_the_code() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text()
    start = text.index("### Web inbox")
    section = text[start : text.index("\n## ", start)]
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section)
    assert images == ["docs/inbox-list.png", "docs/inbox-request.png"]
    assert all((root / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    documented = re.search(r"`Content-Security-Policy: ([^`]*)`", section)
    assert documented is not None and " ".join(documented.group(1).split()) == CSP
    assert f"`{TRUST_PROTO_ENV}=1`" in section


async def test_behind_an_sso_proxy_forms_carry_a_token_bound_to_a_csrf_cookie_on_every_replica(
    web_state: State, resumed: Resumed
) -> None:
    header = {"x-forwarded-email": "ada@example.com"}

    def replica() -> Hitl:
        settings = InboxSettings(trust_proxy_header="X-Forwarded-Email")
        return Hitl(state=web_state, resolver=CallbackResolver(resumed), secret="", inbox=settings)

    one, two = replica(), replica()
    async with one, two, client(one.asgi) as first, client(two.asgi) as second:
        rid = await Site(one).create(first, message="m", namespace="ops")
        await Site(one).reviewers.add("ada", namespaces=["ops"], email="ada@example.com")
        page = await first.get(f"/inbox/requests/{rid}", headers=header)
        assert page.status_code == 200 and "ada" in page.text
        (cookie,) = page.headers.get_list("set-cookie")
        assert cookie.startswith("hitl_csrf=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        form = {"csrf": csrf_of(page.text), "action": "deny", "f:reason": "no"}
        assert (await second.post(f"/inbox/requests/{rid}/decide", data=form, headers=header)).status_code == 403
        second.cookies.clear()  # (the refusal page handed it a key of its own)
        second.cookies.set("hitl_csrf", first.cookies["hitl_csrf"])  # the same browser, another replica
        done = await second.post(f"/inbox/requests/{rid}/decide", data=form, headers=header)
        assert done.status_code == 303
        record = await one.inbox.get(rid)
        assert record is not None and isinstance(record.result, Resolved) and record.result.by is not None
        assert record.result.by.email == "ada@example.com"


async def test_other_methods_are_405(web: Site, http: httpx.AsyncClient) -> None:
    assert (await http.put("/inbox/")).status_code == 405
    assert (await http.delete("/inbox/requests/x")).status_code == 405
    assert (await http.put("/inbox/login")).status_code == 405


async def test_another_apps_odd_cookie_does_not_sign_a_reviewer_out(web: Site, http: httpx.AsyncClient) -> None:
    await alice(web, http)
    session = http.cookies["hitl_session"]
    odd = {"cookie": f'theme="dark; x=[1,2]; hitl_session={session}; other=a\\b'}
    async with client(web.app) as fresh:
        assert (await fresh.get("/inbox/", headers=odd)).status_code == 200


async def test_a_revoked_reviewer_is_signed_out_at_once(web: Site, http: httpx.AsyncClient) -> None:
    await alice(web, http)
    page = await http.get("/inbox/")
    assert page.status_code == 200
    unused = await web.add_reviewer("alice", ["ops"])
    await web.reviewers.revoke("alice")
    assert (await http.get("/inbox/")).status_code == 303
    posted = await http.post("/inbox/logout", data={"csrf": csrf_of(page.text)})
    assert posted.status_code == 401
    async with client(web.app) as other:
        login = await other.get("/inbox/login", params={"token": unused})
        refused = await other.post("/inbox/login", data={"token": unused, "csrf": csrf_of(login.text)})
        assert refused.status_code == 401 and "does not work" in refused.text
