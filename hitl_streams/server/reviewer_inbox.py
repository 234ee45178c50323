"""The inbox as one reviewer sees it: `hitl.inbox` restricted to the reviewer's namespaces.

Outside them a request, batch or thread does not exist (`NotFoundError`, the same error an unknown id
gives, so nothing leaks), a namespace filter matches nothing, and decisions are made by the principal:
`by` is always the authenticated reviewer. Decisions go through `hitl.inbox.resolve` / `resolve_batch`,
so validation, same-decision retries, conflicts and workflow resumption are exactly the programmatic ones.
The JSON API (`inbox_api.py`) and the web inbox both call these.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from ..actions import action_by_id
from ..errors import FeedbackValidationError, NotFoundError, UnknownBatchError, UnknownRequestError
from ..history.events import AuditRecord
from ..namespaces import validate_namespace
from ..pagination import clamp_limit, encode_cursor
from ..records import HumanRequestRecord, InboxPage, RequestStatus, TimelineEntry
from ..results import HumanResult
from .core import BatchDecision
from .decisions import validate_feedbacks
from .inbox import BatchView, Inbox
from .reviewer_auth import Principal

__all__ = ["ReviewerInbox", "field_errors"]


def field_errors(record: HumanRequestRecord, action_id: str, feedbacks: object) -> dict[str, str]:
    """Every field's validation error for a decision (the resolve error names only the first), keyed by
    field; unknown keys under their own name. Empty when the feedbacks fit."""
    action = action_by_id(record.actions, action_id)
    if action is None:
        return {}
    raw = feedbacks if isinstance(feedbacks, Mapping) else {}
    errors: dict[str, str] = {}
    for key in raw:
        if key not in action.fields:
            errors[str(key)] = f'Unknown feedback key: "{key}"'
    for key, spec in action.fields.items():
        try:
            validate_feedbacks({key: spec}, {key: raw.get(key)})
        except FeedbackValidationError as exc:
            errors[key] = str(exc)
    return errors


class ReviewerInbox:
    """`hitl.inbox` for one principal at a time."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    # --- reading --------------------------------------------------------------------------------------
    def _scope(self, principal: Principal, namespace: str | None) -> list[str] | None:
        """The namespaces to read: `None` means every namespace; `[]` nothing (outside scope)."""
        if namespace:
            validate_namespace(namespace)
            return [namespace] if principal.allows(namespace) else []
        if principal.all_namespaces:
            return None
        return sorted(principal.namespaces)

    async def list(
        self,
        principal: Principal,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage:
        """One page, newest first, of the requests in the reviewer's namespaces (or in `namespace`, if it
        is one of them; else an empty page)."""
        size = clamp_limit(limit)
        scope = self._scope(principal, namespace)
        if scope is None or len(scope) == 1:
            only = None if scope is None else scope[0]
            return await self._inbox.list(status=status, namespace=only, limit=size, cursor=cursor)
        if not scope:
            if cursor:  # still a 400 for a malformed cursor
                await self._inbox.list(status=status, limit=1, cursor=cursor)
            return InboxPage(items=[])
        # Several namespaces: one page of each, merged. Cursors are (createdAt, id) positions in one
        # global order, so the same cursor continues every namespace's walk.
        pages = [await self._inbox.list(status=status, namespace=ns, limit=size, cursor=cursor) for ns in scope]
        rows = sorted((r for p in pages for r in p.items), key=lambda r: (r.created_at, r.id), reverse=True)
        more = len(rows) > size or any(p.next_cursor for p in pages)
        items = rows[:size]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None
        return InboxPage(items=items, next_cursor=next_cursor)

    async def count(
        self, principal: Principal, *, status: RequestStatus | None = None, namespace: str | None = None
    ) -> int:
        scope = self._scope(principal, namespace)
        if scope is None:
            return await self._inbox.count(status=status)
        return sum([await self._inbox.count(status=status, namespace=ns) for ns in scope])

    async def get(self, principal: Principal, request_id: str) -> HumanRequestRecord:
        """The request, or `UnknownRequestError` (unknown, or outside the reviewer's namespaces)."""
        record = await self._inbox.get(request_id)
        if record is None or not principal.allows(record.namespace):
            raise UnknownRequestError(request_id)
        return record

    async def get_batch(self, principal: Principal, batch_id: str) -> BatchView:
        """The batch with its items, or `UnknownBatchError`. A batch is in scope when all its items are."""
        view = await self._inbox.get_batch(batch_id)
        if view is None or not view.items or not all(principal.allows(i.namespace) for i in view.items):
            raise UnknownBatchError(batch_id)
        return view

    async def _check_subject(self, principal: Principal, subject_id: str) -> None:
        """A request or batch id in the reviewer's scope, else `NotFoundError`."""
        record = await self._inbox.get(subject_id)
        if record is not None:
            if principal.allows(record.namespace):
                return
            raise NotFoundError(f'Unknown request, batch or thread "{subject_id}"')
        try:
            await self.get_batch(principal, subject_id)
        except UnknownBatchError:
            raise NotFoundError(f'Unknown request, batch or thread "{subject_id}"') from None

    async def timeline(self, principal: Principal, thread_id: str) -> builtins.list[TimelineEntry]:
        """The thread of a request or batch in scope (reminders, escalations, notifications)."""
        await self._check_subject(principal, thread_id)
        return await self._inbox.timeline(thread_id)

    async def audit(self, principal: Principal, subject_id: str) -> builtins.list[AuditRecord]:
        """Every event about a request or batch in scope, oldest first."""
        await self._check_subject(principal, subject_id)
        return await self._inbox.audit(subject_id)

    # --- deciding -------------------------------------------------------------------------------------
    async def resolve(
        self, principal: Principal, request_id: str, *, action_id: str, feedbacks: Mapping[str, Any] | None = None
    ) -> HumanResult:
        """Decide as the principal. Same errors as `hitl.inbox.resolve`; `UnknownRequestError` outside scope."""
        await self.get(principal, request_id)
        return await self._inbox.resolve(
            request_id, action_id=action_id, feedbacks=feedbacks, by=principal.as_reviewer()
        )

    async def resolve_batch(
        self, principal: Principal, batch_id: str, decisions: Sequence[BatchDecision]
    ) -> builtins.list[HumanResult]:
        """Decide a batch as the principal; `UnknownBatchError` outside scope."""
        await self.get_batch(principal, batch_id)
        return await self._inbox.resolve_batch(batch_id, decisions, by=principal.as_reviewer())
