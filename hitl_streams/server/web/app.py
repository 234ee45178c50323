"""`WebInbox`: the server-rendered HTML inbox for reviewers, a plain ASGI application.

Mounted under `inbox/` (its `root_path` is the inbox's own prefix). Works with JavaScript off; the
list's live refresh (`events`, server-sent events) is a progressive enhancement in `static/inbox.js`.

| Route (relative)          | Method | Page                                                          |
|---------------------------|--------|---------------------------------------------------------------|
| ``                        | GET    | the list: `status`, `ns` filters, `cursor` paging            |
| `login`                   | GET    | "Sign in" button for a link `?token=`, else how to get a link |
| `login`                   | POST   | consumes the link token, sets the session cookie              |
| `logout`                  | POST   | ends the session                                              |
| `requests/{id}`           | GET    | message, context, actions with their forms, timeline, audit   |
| `requests/{id}/decide`    | POST   | decide (303 back to the page; 400 field errors; 409 conflict) |
| `batches/{id}`            | GET    | the batch's items, each decidable, and "decide all"           |
| `batches/{id}/decide`     | POST   | one action for every pending item                             |
| `events`                  | GET    | `text/event-stream`: `changed` when the list changes          |
| `static/{name}`           | GET    | the stylesheet and script                                     |

Every POST carries a CSRF token (403 otherwise, and nothing changes). Unauthenticated pages redirect
to `login`; an unauthenticated POST is a 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from ...actions import action_by_id, effective_label
from ...errors import AlreadyResolvedError, NotFoundError, ValidationError
from ...records import HumanRequestRecord, RequestStatus
from ...results import Resolved
from ...reviewers import ALL_NAMESPACES
from ..core import BatchDecision
from ..reviewer_auth import SESSION_COOKIE, Principal, ReviewerAuth
from ..reviewer_inbox import ReviewerInbox
from .csrf import csrf_token, csrf_valid
from .forms import Decision, parse_decision
from .http import HTML_HEADERS, BodyTooLarge, Disconnected, Receive, Request, Response, Scope, Send, cookie_header
from .render import Renderer

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "TRUST_PROTO_ENV", "WebInbox"]

TRUST_PROTO_ENV = "HITL_TRUST_FORWARDED_PROTO"

log = logging.getLogger("hitl_streams.server")

CSRF_COOKIE = "hitl_csrf"
"""For reviewers without a session cookie (proxy header, bearer token): the random key of their CSRF tokens."""
LOGIN_COOKIE = "hitl_login"
"""A random pre-session nonce set with the sign-in form: the form's CSRF token is bound to it."""

_STATIC = {"inbox.css": b"text/css; charset=utf-8", "inbox.js": b"text/javascript; charset=utf-8"}
_MAX_PAGE = 100
_STATUSES: dict[str, RequestStatus | None] = {"pending": "pending", "resolved": "resolved", "all": None}


class _Refused(Exception):
    """Stop handling with this response."""

    def __init__(self, response: Response) -> None:
        self.response = response


class WebInbox:
    """The HTML inbox over reviewer-scoped operations `ops`, signing reviewers in with `auth`.

    - `trust_forwarded_proto`: believe `X-Forwarded-Proto: https` (behind your own TLS proxy) when
      deciding to mark cookies `Secure`; defaults to `HITL_TRUST_FORWARDED_PROTO=1`. (uvicorn's
      `--proxy-headers` also sets the scheme from a trusted proxy.)
    - `live_interval`: seconds between checks of the list for the live refresh; one event stream lasts
      `live_max_seconds` (the browser reconnects), so a server shutting down never waits long for it.
    """

    def __init__(
        self,
        ops: ReviewerInbox,
        auth: ReviewerAuth,
        *,
        trust_forwarded_proto: bool | None = None,
        max_form_bytes: int = 64 * 1024,
        page_size: int = 25,
        live_interval: float = 2.0,
        live_max_seconds: float = 30.0,
    ) -> None:
        self._ops = ops
        self._auth = auth
        if trust_forwarded_proto is None:
            trust_forwarded_proto = os.environ.get(TRUST_PROTO_ENV, "").lower() in ("1", "true", "yes")
        self._trust_proto = trust_forwarded_proto
        self._max_form = max_form_bytes
        self._page_size = page_size
        self._live_interval = live_interval
        self._live_max = live_max_seconds
        self._render = Renderer()
        static = resources.files(__package__).joinpath("static")
        self._static = {name: static.joinpath(name).read_bytes() for name in _STATIC}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            return
        req = Request(scope, receive, trust_forwarded_proto=self._trust_proto)
        try:
            if req.segments == ["events"] and req.method == "GET":
                await self._events(req, send)
                return
            response = await self._route(req)
        except _Refused as refused:
            response = refused.response
        except BodyTooLarge:
            response = self._page(req, None, "message.html", 413, title="Too large", text="That form is too large.")
        except Disconnected:
            return
        await response.send(send)

    # --- routing -----------------------------------------------------------------------------------------
    async def _route(self, req: Request) -> Response:
        seg, method = req.segments, req.method
        if seg[:1] == ["static"] and len(seg) == 2:
            return self._static_file(seg[1])
        if method not in ("GET", "HEAD", "POST"):
            return self._page(req, None, "message.html", 405, title="Not allowed", text="Use the inbox's pages.")
        if seg == ["login"]:
            return await (self._login_post(req) if method == "POST" else self._login_get(req))
        principal = await self._auth.authenticate(req.scope)
        if principal is None:
            if method in ("GET", "HEAD"):
                return Response.redirect(req.url("login"))
            return self._page(req, None, "message.html", 401, title="Signed out", text="Please sign in again.")
        if method == "POST":
            await self._check_csrf(req, principal)
            if seg == ["logout"]:
                return await self._logout(req)
            if len(seg) == 3 and seg[0] == "requests" and seg[2] == "decide":
                return await self._decide(req, principal, seg[1])
            if len(seg) == 3 and seg[0] == "batches" and seg[2] == "decide":
                return await self._decide_batch(req, principal, seg[1])
        elif method in ("GET", "HEAD"):
            if not seg:
                return await self._list(req, principal)
            if len(seg) == 2 and seg[0] == "requests":
                return await self._request_page(req, principal, seg[1])
            if len(seg) == 2 and seg[0] == "batches":
                return await self._batch_page(req, principal, seg[1])
        return self._not_found(req, principal)

    # --- pages -------------------------------------------------------------------------------------------
    def _page(
        self, req: Request, principal: Principal | None, template: str, code: int = 200, **context: Any
    ) -> Response:
        cookies: list[bytes] = []
        csrf = self._csrf(req, principal, cookies) if principal is not None else ""
        body = self._render.render(template, base=req.base, principal=principal, csrf=csrf, url=req.url, **context)
        return Response(code, body, headers=[(b"set-cookie", cookie) for cookie in cookies])

    def _not_found(self, req: Request, principal: Principal | None) -> Response:
        return self._page(req, principal, "message.html", 404, title="Not found", text="There is nothing here.")

    def _static_file(self, name: str) -> Response:
        content_type = _STATIC.get(name)
        if content_type is None:
            return Response(404, b"Not found", b"text/plain; charset=utf-8")
        return Response(200, self._static[name], content_type, [(b"cache-control", b"public, max-age=300")])

    async def _login_get(self, req: Request) -> Response:
        token = req.query("token")
        if not token:
            signed_out = req.query("signed_out") is not None
            return self._page(req, None, "login.html", token=None, login_csrf="", signed_out=signed_out)
        nonce = secrets.token_urlsafe(24)
        response = self._page(req, None, "login.html", token=token, login_csrf=csrf_token(nonce.encode(), token))
        response.headers.append(
            (b"set-cookie", cookie_header(LOGIN_COOKIE, nonce, path=req.base, secure=req.https, max_age=900))
        )
        return response

    async def _login_post(self, req: Request) -> Response:
        form = await req.form(self._max_form)
        token = _last(form, "token") or ""
        nonce = req.cookie(LOGIN_COOKIE) or ""
        if not nonce or not csrf_valid(nonce.encode(), token, _last(form, "csrf")):
            return self._forbidden(req, None)
        signed = await self._auth.sign_in(token)
        clear_nonce = cookie_header(LOGIN_COOKIE, "", path=req.base, secure=req.https, max_age=0)
        if signed is None:
            response = self._page(
                req,
                None,
                "message.html",
                401,
                title="This link does not work",
                text="The sign-in link is invalid, expired or already used. Ask for a new one.",
            )
            response.headers.append((b"set-cookie", clear_nonce))
            return response
        _, session = signed
        cookie = cookie_header(SESSION_COOKIE, session, path=req.base, secure=req.https)
        return Response.redirect(req.url(""), cookie, clear_nonce)

    async def _logout(self, req: Request) -> Response:
        session = req.cookie(SESSION_COOKIE)
        if session:
            await self._auth.sign_out(session)
        cleared = cookie_header(SESSION_COOKIE, "", path=req.base, secure=req.https, max_age=0)
        return Response.redirect(req.url("login") + "?signed_out=1", cleared)

    async def _list(self, req: Request, principal: Principal) -> Response:
        status_name = req.query("status") or "pending"
        namespace = req.query("ns") or None
        cursor = req.query("cursor") or None
        limit_text = req.query("limit") or None
        if limit_text is not None and not (limit_text.isdigit() and 1 <= int(limit_text) <= _MAX_PAGE):
            return self._bad_request(req, principal, f"limit must be a whole number from 1 to {_MAX_PAGE}.")
        limit = int(limit_text) if limit_text is not None else self._page_size
        if status_name not in _STATUSES:
            return self._bad_request(req, principal, f'Unknown status "{status_name}".')
        if namespace is not None and not principal.allows(namespace):
            return self._not_found(req, principal)
        status = _STATUSES[status_name]
        try:
            page = await self._ops.list(principal, status=status, namespace=namespace, limit=limit, cursor=cursor)
        except ValidationError as exc:
            return self._bad_request(req, principal, str(exc))
        try:
            pending = await self._ops.count(principal, status="pending", namespace=namespace)
        except ValidationError as exc:
            return self._bad_request(req, principal, str(exc))
        return self._page(
            req,
            principal,
            "list.html",
            page=page,
            status=status_name,
            namespace=namespace,
            cursor=cursor,
            pending=pending,
            namespaces=sorted(ns for ns in principal.namespaces if ns != ALL_NAMESPACES),
            statuses=list(_STATUSES),
            list_url=lambda **query: _with_query(req.url(""), {**query, "limit": limit_text}),
            # Live refresh of the first page only; `v` is what this page shows, so a change between
            # rendering and the event stream connecting is still reported.
            live_url=None
            if cursor
            else _with_query(
                req.url("events"),
                {"status": status_name, "ns": namespace, "limit": limit_text, "v": _fingerprint(page.items)},
            ),
        )

    async def _request_page(
        self,
        req: Request,
        principal: Principal,
        request_id: str,
        *,
        status: int = 200,
        decision: Decision | None = None,
        notice: str | None = None,
    ) -> Response:
        try:
            record = await self._ops.get(principal, request_id)
        except NotFoundError:
            return self._not_found(req, principal)
        # A batch item's notifications are threaded under its batch (REF §5.4).
        timeline = await self._ops.timeline(principal, record.batch_id or record.id)
        audit = await self._ops.audit(principal, record.id)
        return self._page(
            req,
            principal,
            "request.html",
            status,
            record=record,
            timeline=timeline,
            audit=audit,
            decision=decision,
            notice=notice,
        )

    async def _batch_page(
        self, req: Request, principal: Principal, batch_id: str, *, status: int = 200, notice: str | None = None
    ) -> Response:
        try:
            view = await self._ops.get_batch(principal, batch_id)
        except NotFoundError:
            return self._not_found(req, principal)
        pending = [item for item in view.items if item.status == "pending"]
        batch_actions = view.batch.actions or (pending[0].actions if pending else [])
        audit = await self._ops.audit(principal, batch_id)
        timeline = await self._ops.timeline(principal, batch_id)
        return self._page(
            req,
            principal,
            "batch.html",
            status,
            view=view,
            pending=pending,
            batch_actions=batch_actions,
            audit=audit,
            timeline=timeline,
            notice=notice,
        )

    # --- decisions ---------------------------------------------------------------------------------------
    async def _decide(self, req: Request, principal: Principal, request_id: str) -> Response:
        form = await req.form(self._max_form)
        try:
            record = await self._ops.get(principal, request_id)
        except NotFoundError:
            return self._not_found(req, principal)
        back = req.url("batches", record.batch_id) if _last(form, "back") == "batch" and record.batch_id else None
        decision = parse_decision(form, record.actions)
        if not decision.ok and record.status == "resolved":
            return await self._conflict(req, principal, record)
        if not decision.ok:
            return await self._request_page(req, principal, request_id, status=400, decision=decision)
        try:
            # A decided request still goes through resolve: the same decision again (a double submit)
            # returns the stored result and lands on the outcome; a different one is the conflict.
            await self._ops.resolve(principal, request_id, action_id=decision.action_id, feedbacks=decision.feedbacks)
        except AlreadyResolvedError:
            return await self._conflict(req, principal, record)
        except NotFoundError:
            return self._not_found(req, principal)
        except ValidationError as exc:
            decision.error = str(exc)
            return await self._request_page(req, principal, request_id, status=400, decision=decision)
        return Response.redirect(back or req.url("requests", request_id))

    async def _conflict(self, req: Request, principal: Principal, record: HumanRequestRecord) -> Response:
        current = await self._ops.get(principal, record.id)
        result = current.result
        if isinstance(result, Resolved):
            who = (result.by.name or result.by.email or result.by.id) if result.by is not None else None
            action = action_by_id(current.actions, result.action_id)
            what = effective_label(action) if action is not None else result.action_id
            notice = f"Already decided by {who or 'someone else'} ({what}). Your decision was not recorded."
        else:
            notice = "This request timed out before your decision. Your decision was not recorded."
        return await self._request_page(req, principal, record.id, status=409, notice=notice)

    async def _decide_batch(self, req: Request, principal: Principal, batch_id: str) -> Response:
        form = await req.form(self._max_form)
        try:
            view = await self._ops.get_batch(principal, batch_id)
        except NotFoundError:
            return self._not_found(req, principal)
        pending = [item for item in view.items if item.status == "pending"]
        actions = view.batch.actions or (pending[0].actions if pending else [])
        decision = parse_decision(form, actions)
        if not decision.ok:
            errors = [decision.error, *decision.field_errors.values()]
            text = "; ".join(e for e in errors if e)
            return await self._batch_page(req, principal, batch_id, status=400, notice=text)
        decisions = [
            BatchDecision(request_id=item.id, action_id=decision.action_id, feedbacks=decision.feedbacks)
            for item in pending
        ]
        try:
            await self._ops.resolve_batch(principal, batch_id, decisions)
        except AlreadyResolvedError:
            notice = "Someone else decided part of this batch first. Nothing was recorded; review and try again."
            return await self._batch_page(req, principal, batch_id, status=409, notice=notice)
        except NotFoundError:
            return self._not_found(req, principal)
        except ValidationError as exc:
            return await self._batch_page(req, principal, batch_id, status=400, notice=str(exc))
        return Response.redirect(req.url("batches", batch_id))

    # --- security ----------------------------------------------------------------------------------------
    def _csrf_key(self, req: Request) -> tuple[bytes, str] | None:
        """The secret a CSRF token is an HMAC under, and what it binds: the session cookie, else (a
        reviewer signed in by a proxy header or a bearer token) a random `hitl_csrf` cookie."""
        session = req.cookie(SESSION_COOKIE)
        if session:
            return session.encode(), "session"
        nonce = req.cookie(CSRF_COOKIE)
        return (nonce.encode(), "cookie") if nonce else None

    def _csrf(self, req: Request, principal: Principal, response_cookies: list[bytes]) -> str:
        key = self._csrf_key(req)
        if key is None:
            nonce = secrets.token_urlsafe(32)
            response_cookies.append(cookie_header(CSRF_COOKIE, nonce, path=req.base, secure=req.https))
            key = nonce.encode(), "cookie"
        return csrf_token(key[0], f"{key[1]}:{principal.reviewer_id}")

    async def _check_csrf(self, req: Request, principal: Principal) -> None:
        form = await req.form(self._max_form)
        key = self._csrf_key(req)
        if key is None or not csrf_valid(key[0], f"{key[1]}:{principal.reviewer_id}", _last(form, "csrf")):
            raise _Refused(self._forbidden(req, principal))

    def _forbidden(self, req: Request, principal: Principal | None) -> Response:
        return self._page(
            req,
            principal,
            "message.html",
            403,
            title="Refused",
            text="This form is stale or did not come from the inbox (missing or invalid CSRF token). "
            "Nothing was changed. Go back, reload the page and try again.",
        )

    def _bad_request(self, req: Request, principal: Principal, text: str) -> Response:
        return self._page(req, principal, "message.html", 400, title="Bad request", text=text)

    # --- live refresh ------------------------------------------------------------------------------------
    async def _events(self, req: Request, send: Send) -> None:
        principal = await self._auth.authenticate(req.scope)
        if principal is None:
            await Response(401, b"Sign in first", b"text/plain; charset=utf-8").send(send)
            return
        namespace = req.query("ns") or None
        status = _STATUSES.get(req.query("status") or "pending", "pending")
        if namespace is not None and not principal.allows(namespace):
            await Response(404, b"Not found", b"text/plain; charset=utf-8").send(send)
            return
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            *((k, v) for k, v in HTML_HEADERS),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.Event()

        async def watch() -> None:
            while (await req.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.body", "body": b"retry: 5000\n\n", "more_body": True})
            # What the browser shows: the digest of its last `changed` event when it reconnects
            # (`Last-Event-ID`), else the page's own.
            last = req.header(b"last-event-id") or req.query("v")
            limit_text = req.query("limit") or ""
            limit = int(limit_text) if limit_text.isdigit() and 1 <= int(limit_text) <= _MAX_PAGE else self._page_size
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._live_max
            while not gone.is_set() and loop.time() < deadline:
                page = await self._ops.list(principal, status=status, namespace=namespace, limit=limit)
                seen = _fingerprint(page.items)
                if last is not None and seen != last:
                    event = f"id: {seen}\nevent: changed\ndata: {{}}\n\n".encode()
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                last = seen
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), self._live_interval)
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _fingerprint(items: list[HumanRequestRecord]) -> str:
    """A short digest of a list page: which requests, in which status."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.id}\x00{item.status}\x00".encode())
    return digest.hexdigest()[:16]


def _last(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[-1] if values else None


def _with_query(path: str, query: dict[str, str | None]) -> str:
    present = {key: value for key, value in query.items() if value is not None}
    return f"{path}?{urlencode(present)}" if present else path
