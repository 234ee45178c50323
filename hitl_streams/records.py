"""Stored records: msgspec Structs with snake_case attributes and the TypeScript SDK's camelCase JSON.

Field order is the order the TypeScript `IoredisState` writes, so our JSON is byte-compatible with it.
Optional attributes default to `None` and are omitted from JSON.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .actions import Action
from .results import HumanResult

__all__ = [
    "BatchRecord",
    "HumanRequestRecord",
    "InboxPage",
    "NewBatch",
    "NewHumanRequest",
    "NewNotifyDelivery",
    "NotifyDeliveryRecord",
    "RequestStatus",
    "TimelineEntry",
]

RequestStatus = Literal["pending", "resolved"]


class NewHumanRequest(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Input to `State.create`. `namespace` is already validated by the server."""

    id: str
    token: str
    channel: str
    namespace: str = "global"
    message: str
    actions: list[Action]
    context: dict[str, Any] | None = None
    batch_id: str | None = None
    batch_index: int | None = None


class HumanRequestRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A stored human request. Timed-out requests are `"resolved"` too; the result type tells them apart."""

    id: str
    token: str
    channel: str
    namespace: str
    message: str
    actions: list[Action]
    context: dict[str, Any] | None = None
    status: RequestStatus
    external_id: str | None = None
    external_ids: dict[str, str] | None = None
    result: HumanResult | None = None
    created_at: str
    resolved_at: str | None = None
    batch_id: str | None = None
    batch_index: int | None = None


class NewBatch(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Input to `State.create_batch`."""

    id: str
    channel: str
    message: str | None = None
    actions: list[Action] | None = None
    context: dict[str, Any] | None = None


class BatchRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A stored batch. Its status is not stored: it is derived from its items."""

    id: str
    channel: str
    message: str | None = None
    actions: list[Action] | None = None
    context: dict[str, Any] | None = None
    external_id: str | None = None
    external_ids: dict[str, str] | None = None
    created_at: str


class TimelineEntry(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One message in a thread. The caller supplies `created_at`."""

    id: str
    thread_id: str
    message: str
    detail: dict[str, Any] | None = None
    created_at: str


class NewNotifyDelivery(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Input to `State.create_notify_delivery`."""

    id: str
    channel: str
    message: str
    group_id: str


class NotifyDeliveryRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A stored notification delivery (its `detail` lives on the timeline entry only)."""

    id: str
    channel: str
    message: str
    group_id: str
    external_id: str | None = None
    created_at: str


class InboxPage(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One page of `State.list`: newest first; `next_cursor` is absent on the last page."""

    items: list[HumanRequestRecord]
    next_cursor: str | None = None
