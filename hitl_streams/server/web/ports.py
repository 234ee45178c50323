"""What the web inbox needs from the reviewer side: an authenticator and reviewer-scoped operations.

Typed as protocols so the pages depend on the shape, not on one implementation.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from ...history.events import AuditRecord
from ...records import HumanRequestRecord, InboxPage, RequestStatus, TimelineEntry
from ...results import HumanResult
from ..core import BatchDecision
from ..inbox import BatchView

__all__ = ["Authenticator", "PrincipalLike", "ReviewerOps"]


class PrincipalLike(Protocol):
    """An authenticated reviewer."""

    @property
    def reviewer_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def email(self) -> str | None: ...

    @property
    def namespaces(self) -> frozenset[str]: ...


class Authenticator(Protocol):
    """Who is calling (session cookie, bearer token, trusted proxy header), and the link sign-in."""

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Any: ...

    async def sign_in(self, link_token: str) -> tuple[Any, str] | None: ...

    async def sign_out(self, session_token: str) -> None: ...


class ReviewerOps(Protocol):
    """Inbox operations scoped to a reviewer: outside their namespaces a subject raises `NotFoundError`."""

    async def list(
        self,
        principal: Any,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage: ...

    async def count(
        self, principal: Any, *, status: RequestStatus | None = None, namespace: str | None = None
    ) -> int: ...

    async def get(self, principal: Any, request_id: str) -> HumanRequestRecord: ...

    async def get_batch(self, principal: Any, batch_id: str) -> BatchView: ...

    async def timeline(self, principal: Any, thread_id: str) -> builtins.list[TimelineEntry]: ...

    async def audit(self, principal: Any, subject_id: str) -> builtins.list[AuditRecord]: ...

    async def resolve(
        self, principal: Any, request_id: str, *, action_id: str, feedbacks: Mapping[str, Any] | None = None
    ) -> HumanResult: ...

    async def resolve_batch(
        self, principal: Any, batch_id: str, decisions: Sequence[BatchDecision]
    ) -> builtins.list[HumanResult]: ...
