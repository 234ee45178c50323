"""Helpers for the web inbox tests: a `Hitl` with the inbox mounted, reviewers, and a signed-in client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from hitl_streams import Action, State
from hitl_streams.reviewers import ReviewerDirectory
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.server.wire import CreateRequestBody

from .conftest import resume_queue_for
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
    """A Hitl with the reviewer side on, its app mounted at `prefix`."""

    hitl: Hitl
    prefix: str = ""

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if self.prefix and scope["type"] == "http":
            assert scope["path"].startswith(self.prefix)
            scope = dict(scope, root_path=self.prefix)
        await self.hitl.asgi(scope, receive, send)

    @property
    def reviewers(self) -> ReviewerDirectory:
        directory = getattr(self.hitl.state, "reviewers", None)
        assert isinstance(directory, ReviewerDirectory)
        return directory

    async def add_reviewer(self, name: str, namespaces: list[str], email: str | None = None) -> str:
        """Add a reviewer (or reuse one) and return a one-time sign-in link token."""
        if await self.reviewers.get(name) is None:
            await self.reviewers.add(name, namespaces=namespaces, email=email)
        return (await self.reviewers.issue(name, "link")).token

    async def create(self, http: httpx.AsyncClient, **body: Any) -> str:
        body.setdefault("actions", FIELDS_ACTIONS)
        body.setdefault("token", f"tok-{body['message']}-{body.get('namespace', 'global')}")
        reply = await http.post(f"{self.prefix}{API}/requests", json=body)
        assert reply.status_code == 201, reply.text
        request_id: str = reply.json()["id"]
        return request_id

    async def create_trusted(self, **body: Any) -> str:
        """Create through `Core` as trusted code does (the HTTP API's bounds on action ids and labels do not
        apply), so pages are shown data that never passed the HTTP checks, e.g. from the State API."""
        body.setdefault("token", f"tok-{body['message']}-{body.get('namespace', 'global')}")
        request = CreateRequestBody(
            token=body["token"],
            message=body["message"],
            actions=msgspec.convert(body["actions"], list[Action]),
            context=body.get("context"),
            namespace=body.get("namespace", "global"),
        )
        anchor = await self.hitl.core.create_request(request)
        return anchor.id


@asynccontextmanager
async def site(state: State, resumed: Resumed, prefix: str = "") -> AsyncIterator[Site]:
    hitl = Hitl(
        state=state,
        resolver=CallbackResolver(resumed),
        secret="",
        retry=RetryPolicy(initial=0.01, maximum=0.05, jitter=0),
        resume_queue=resume_queue_for(state),
        inbox=True,
    )
    async with hitl:
        yield Site(hitl, prefix)


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
