"""A stand-in for the reviewer side (`reviewer_auth`, `reviewer_inbox`) until that branch lands.

Same signatures: `Principal`, `ReviewerAuth.authenticate/sign_in/sign_out`, and reviewer-scoped inbox
operations that raise `NotFoundError` outside the principal's namespaces. In memory, for tests only.
"""

from __future__ import annotations

import builtins
import hmac
import secrets
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import UnknownBatchError, UnknownRequestError
from ...history.events import AuditRecord
from ...records import HumanRequestRecord, InboxPage, RequestStatus, TimelineEntry
from ...results import HumanResult, Reviewer
from ..core import BatchDecision
from ..inbox import BatchView, Inbox

SESSION_COOKIE = "hitl_session"


@dataclass(frozen=True)
class Principal:
    reviewer_id: str
    name: str
    email: str | None
    namespaces: frozenset[str]


def _cookie(scope: MutableMapping[str, Any], name: str) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == b"cookie":
            for part in bytes(value).decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


class ReviewerAuth:
    def __init__(self) -> None:
        self._links: dict[str, Principal] = {}
        self._sessions: dict[str, Principal] = {}

    def add(self, name: str, namespaces: Sequence[str], email: str | None = None) -> str:
        principal = Principal(f"rv_{name}", name, email, frozenset(namespaces))
        link = secrets.token_urlsafe(24)
        self._links[link] = principal
        return link

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Principal | None:
        token = _cookie(scope, SESSION_COOKIE)
        if token is None:
            return None
        for known, principal in self._sessions.items():
            if hmac.compare_digest(known, token):
                return principal
        return None

    async def sign_in(self, link_token: str) -> tuple[Principal, str] | None:
        principal = self._links.pop(link_token, None)
        if principal is None:
            return None
        session = secrets.token_urlsafe(32)
        self._sessions[session] = principal
        return principal, session

    async def sign_out(self, session_token: str) -> None:
        self._sessions.pop(session_token, None)


class ReviewerInbox:
    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def list(
        self,
        principal: Principal,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage:
        if namespace is not None:
            if namespace not in principal.namespaces:
                return InboxPage(items=[])
            return await self._inbox.list(status=status, namespace=namespace, limit=limit, cursor=cursor)
        items: builtins.list[HumanRequestRecord] = []
        for ns in principal.namespaces:
            page_cursor: str | None = None
            while True:
                page = await self._inbox.list(status=status, namespace=ns, limit=100, cursor=page_cursor)
                items.extend(page.items)
                if page.next_cursor is None:
                    break
                page_cursor = page.next_cursor
        items.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        start = int(cursor or 0)
        size = limit or 20
        rest = items[start : start + size]
        more = start + size < len(items)
        return InboxPage(items=rest, next_cursor=str(start + size) if more else None)

    async def count(
        self, principal: Principal, *, status: RequestStatus | None = None, namespace: str | None = None
    ) -> int:
        names = [namespace] if namespace is not None else sorted(principal.namespaces)
        return sum([await self._inbox.count(status=status, namespace=ns) for ns in names if ns in principal.namespaces])

    async def get(self, principal: Principal, request_id: str) -> HumanRequestRecord:
        record = await self._inbox.get(request_id)
        if record is None or record.namespace not in principal.namespaces:
            raise UnknownRequestError(request_id)
        return record

    async def get_batch(self, principal: Principal, batch_id: str) -> BatchView:
        view = await self._inbox.get_batch(batch_id)
        if view is None or not view.items or any(i.namespace not in principal.namespaces for i in view.items):
            raise UnknownBatchError(batch_id)
        return view

    async def timeline(self, principal: Principal, thread_id: str) -> builtins.list[TimelineEntry]:
        return await self._inbox.timeline(thread_id)

    async def audit(self, principal: Principal, subject_id: str) -> builtins.list[AuditRecord]:
        return await self._inbox.audit(subject_id)

    async def resolve(
        self, principal: Principal, request_id: str, *, action_id: str, feedbacks: Mapping[str, Any] | None = None
    ) -> HumanResult:
        await self.get(principal, request_id)
        by = Reviewer(id=principal.reviewer_id, name=principal.name, email=principal.email)
        return await self._inbox.resolve(request_id, action_id=action_id, feedbacks=feedbacks, by=by)

    async def resolve_batch(
        self, principal: Principal, batch_id: str, decisions: Sequence[BatchDecision]
    ) -> builtins.list[HumanResult]:
        await self.get_batch(principal, batch_id)
        by = Reviewer(id=principal.reviewer_id, name=principal.name, email=principal.email)
        return await self._inbox.resolve_batch(batch_id, decisions, by=by)
