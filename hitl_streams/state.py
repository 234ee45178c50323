"""The `State` protocol: what the server needs from a storage backend (REF §2, SPEC §2.1).

Every backend passes the reusable contract suite in `hitl_streams.testing`.
"""

from __future__ import annotations

import builtins
from typing import Protocol, runtime_checkable

from .records import (
    BatchRecord,
    HumanRequestRecord,
    InboxPage,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    NotifyDeliveryRecord,
    RequestStatus,
    TimelineEntry,
)
from .results import HumanResult

__all__ = ["State"]


@runtime_checkable
class State(Protocol):
    """Storage for requests, batches, timelines and notify deliveries. All methods are coroutines.

    Mutations return `None`. `create` raises `DuplicateTokenError` when the token is taken;
    `resolve` raises `AlreadyResolvedError` on any second resolve; unknown subjects raise the
    `NotFoundError` subclasses; a bad cursor raises `ValidationError`.
    """

    async def ensure_schema(self) -> None: ...

    async def create(self, record: NewHumanRequest) -> None: ...

    async def get(self, request_id: str) -> HumanRequestRecord | None: ...

    async def find_by_external_id(self, external_id: str) -> HumanRequestRecord | None: ...

    async def find_by_token(self, token: str) -> HumanRequestRecord | None: ...

    async def set_external_id(self, request_id: str, external_id: str, plugin_id: str | None = None) -> None: ...

    async def resolve(self, request_id: str, result: HumanResult) -> None: ...

    async def list(
        self,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage: ...

    async def count(self, *, status: RequestStatus | None = None, namespace: str | None = None) -> int: ...

    async def create_batch(self, record: NewBatch) -> None: ...

    async def get_batch(self, batch_id: str) -> BatchRecord | None: ...

    async def set_batch_external_id(self, batch_id: str, external_id: str, plugin_id: str | None = None) -> None: ...

    async def list_by_batch(self, batch_id: str) -> builtins.list[HumanRequestRecord]: ...

    async def append_timeline(self, entry: TimelineEntry) -> None: ...

    async def timeline(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[TimelineEntry]:
        """The thread's entries, oldest first: all of them, or with `limit` a page of at most that many
        after `cursor` (the id of the last entry of the previous page)."""
        ...

    async def create_notify_delivery(self, record: NewNotifyDelivery) -> None: ...

    async def get_notify_delivery(self, delivery_id: str) -> NotifyDeliveryRecord | None: ...

    async def set_notify_delivery_external_id(self, delivery_id: str, external_id: str) -> None: ...
