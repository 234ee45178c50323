"""Audit trail access: states that keep history (`InMemoryState`, `StreamState`) can record and read it."""

from __future__ import annotations

import builtins
from typing import Protocol, runtime_checkable

from ..history.events import AuditRecord, Event

__all__ = ["Auditable"]


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
