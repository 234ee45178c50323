"""Helpers for the web inbox tests: a `Hitl` with the inbox mounted, reviewers, and a signed-in client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from hitl_streams import State
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.server.web import WebInbox
from hitl_streams.server.web._standin import ReviewerAuth, ReviewerInbox

from .support import API, Resumed

CSRF = re.compile(r'name="csrf" value="([^"]*)"')

FIELDS_ACTIONS = [
    {
        "id": "approve",
        "fields": {
            "note": {"kind": "text", "label": "Note", "default": "looks good"},
            "env": {"kind": "select", "label": "Environment", "options": ["staging", "production"]},
            "notify": {"kind": "confirm", "label": "Notify the team", "default": True},
        },
    },
    {"id": "deny", "fields": {"reason": {"kind": "textarea", "label": "Reason"}}},
]


@dataclass
class Site:
    """A Hitl with its web inbox mounted at `{prefix}/inbox`, and the reviewers' sign-in links."""

    hitl: Hitl
    auth: ReviewerAuth
    web: WebInbox
    prefix: str = ""

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        inbox = f"{self.prefix}/inbox"
        if scope["type"] == "http" and (path == inbox or path.startswith(inbox + "/")):
            await self.web(dict(scope, root_path=inbox), receive, send)
            return
        await self.hitl.asgi(scope, receive, send)

    def add_reviewer(self, name: str, namespaces: list[str], email: str | None = None) -> str:
        return self.auth.add(name, namespaces, email)

    async def create(self, http: httpx.AsyncClient, **body: Any) -> str:
        body.setdefault("actions", FIELDS_ACTIONS)
        body.setdefault("token", f"tok-{body['message']}-{body.get('namespace', 'global')}")
        reply = await http.post(f"{self.prefix}{API}/requests", json=body)
        assert reply.status_code == 201, reply.text
        request_id: str = reply.json()["id"]
        return request_id


@asynccontextmanager
async def site(state: State, resumed: Resumed, prefix: str = "", **web: Any) -> AsyncIterator[Site]:
    hitl = Hitl(
        state=state,
        resolver=CallbackResolver(resumed),
        secret="",
        retry=RetryPolicy(initial=0.01, maximum=0.05, jitter=0),
    )
    auth = ReviewerAuth()
    async with hitl:
        yield Site(hitl, auth, WebInbox(ReviewerInbox(hitl.inbox), auth, **web), prefix)


def client(app: Any, base_url: str = "http://hitl.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, link: str, inbox: str = "/inbox") -> None:
    page = await http.get(f"{inbox}/login", params={"token": link})
    assert page.status_code == 200
    done = await http.post(f"{inbox}/login", data={"token": link, "csrf": csrf_of(page.text)})
    assert done.status_code == 303, done.text
