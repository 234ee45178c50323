"""`hitl.inbox`: read requests and decide them from your own code (REF §5.8), plus timelines and audit trails.

These methods trust their caller (`by` is whatever it says). Reviewers deciding over HTTP go through the
authenticated inbox API instead (`Hitl(inbox=True)`, `inbox_api.py`), or your own handlers around these.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ..errors import ValidationError
from ..history.events import AuditRecord
from ..records import BatchRecord, HumanRequestRecord, InboxPage, RequestStatus, TimelineEntry
from ..results import HumanResult, Reviewer
from ..state import State
from .audit import Auditable
from .core import BatchDecision, Core

__all__ = ["BatchView", "Inbox"]


class BatchView(msgspec.Struct, frozen=True):
    """A batch with its items in index order."""

    batch: BatchRecord
    items: builtins.list[HumanRequestRecord]


class Inbox:
    """The programmatic inbox of one `Hitl`."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._state: State = core.state

    async def list(
        self,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage:
        """One page, newest first; pass the page's `next_cursor` to get the next (older) one."""
        return await self._state.list(status=status, namespace=namespace, limit=limit, cursor=cursor)

    async def count(self, *, status: RequestStatus | None = None, namespace: str | None = None) -> int:
        return await self._state.count(status=status, namespace=namespace)

    async def get(self, request_id: str) -> HumanRequestRecord | None:
        return await self._state.get(request_id)

    async def get_batch(self, batch_id: str) -> BatchView | None:
        batch = await self._state.get_batch(batch_id)
        if batch is None:
            return None
        return BatchView(batch, await self._state.list_by_batch(batch_id))

    async def resolve(
        self,
        request_id: str,
        *,
        action_id: str,
        feedbacks: Mapping[str, Any] | None = None,
        by: Reviewer | Mapping[str, Any] | None = None,
    ) -> HumanResult:
        """Decide a request. The workflow is resumed in the background, retried until it succeeds.

        Raises `UnknownRequestError`, `UnknownActionError`, `FeedbackValidationError`, or
        `AlreadyResolvedError` when it was decided differently before (the same decision again
        returns the stored result).
        """
        return await self._core.resolve(request_id, action_id, feedbacks, _reviewer(by))

    async def resolve_batch(
        self,
        batch_id: str,
        decisions: Sequence[BatchDecision | Mapping[str, Any]],
        *,
        by: Reviewer | Mapping[str, Any] | None = None,
    ) -> builtins.list[HumanResult]:
        """Decide every pending item of a batch at once; results in item order.

        Every decision is validated before anything is written: one bad decision leaves every item pending.
        """
        return await self._core.resolve_batch(batch_id, [_decision(d) for d in decisions], _reviewer(by))

    async def timeline(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[TimelineEntry]:
        """The notifications, reminders and escalations of a thread (a request, batch or notify group),
        oldest first. With `limit`, one page: pass the last entry's `id` as `cursor` for the next one."""
        if limit is None and cursor is None:
            return await self._state.timeline(thread_id)
        return await self._state.timeline(thread_id, limit=limit, cursor=cursor)

    async def audit(
        self, subject_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[AuditRecord]:
        """Every event about a request or batch, oldest first (empty for a state without history). With
        `limit`, one page: pass the last record's `position` as `cursor` for the next one."""
        if not isinstance(self._state, Auditable):
            return []
        if limit is None and cursor is None:
            return await self._state.audit(subject_id)
        return await self._state.audit(subject_id, limit=limit, cursor=cursor)


def _decision(value: BatchDecision | Mapping[str, Any]) -> BatchDecision:
    """A `BatchDecision`, or a mapping shaped like the TypeScript SDK's `{requestId, actionId, feedbacks?}`
    (snake_case keys work too)."""
    if isinstance(value, BatchDecision):
        return value
    if isinstance(value, Mapping):
        request_id = value.get("requestId", value.get("request_id"))
        action_id = value.get("actionId", value.get("action_id"))
        feedbacks = value.get("feedbacks")
        if (
            isinstance(request_id, str)
            and isinstance(action_id, str)
            and (feedbacks is None or isinstance(feedbacks, Mapping))
        ):
            return BatchDecision(
                request_id=request_id, action_id=action_id, feedbacks=None if feedbacks is None else dict(feedbacks)
            )
    raise ValidationError(
        "A batch decision is a BatchDecision or a mapping {requestId, actionId, feedbacks?}, "
        f"got {type(value).__name__}"
    )


def _reviewer(by: Reviewer | Mapping[str, Any] | None) -> Reviewer | None:
    """`by` as a `Reviewer`; a mapping `{id?, name?, email?}` (the TypeScript shape) is converted, so the
    result returned, stored and handed to the resolver is the same value."""
    if by is None or isinstance(by, Reviewer):
        return by
    try:
        return msgspec.convert(by, Reviewer)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"by must be a Reviewer or a mapping {{id?, name?, email?}} of strings: {exc}") from None
