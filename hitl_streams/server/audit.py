"""Audit trail access: states that keep history (`InMemoryState`, `StreamState`) can record and read it;
`StreamState` can also record a delivery with its external id in one write (`DeliveryRecorder`)."""

from __future__ import annotations

import builtins
from typing import Protocol, runtime_checkable

from ..history.events import AuditRecord, Event, RequestDelivered, RequestRedelivered

__all__ = ["Auditable", "DeliveryRecorder"]


@runtime_checkable
class Auditable(Protocol):
    """A state with history: `record` appends an audit event, `audit` reads a subject's events in order."""

    async def record(self, event: Event) -> None: ...

    async def audit(
        self, subject_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[AuditRecord]:
        """Oldest first: all of them, or with `limit` a page of at most that many after `cursor` (the
        `position` of the last record of the previous page)."""
        ...


@runtime_checkable
class DeliveryRecorder(Protocol):
    """A state that stores a delivery's external id and records its audit event in one atomic write (the
    same two events as `set_external_id` then `record`), giving the delivery lease back in it too."""

    async def record_delivery(
        self,
        request_id: str,
        external_id: str,
        plugin_id: str | None,
        delivered: RequestDelivered | RequestRedelivered,
        lease: tuple[str, str] | None = None,
    ) -> None: ...
