"""What a workflow gets back: `Resolved | TimedOut`, a union tagged on `"type"` as in the TypeScript SDK."""

from __future__ import annotations

from typing import Any, TypeGuard

import msgspec

__all__ = ["HumanResult", "Resolved", "Reviewer", "TimedOut", "is_resolved"]


class Reviewer(msgspec.Struct, omit_defaults=True, frozen=True, kw_only=True):
    """Who decided. Free-form and supplied by the caller (REF §2.1)."""

    id: str | None = None
    name: str | None = None
    email: str | None = None


class Resolved(msgspec.Struct, tag_field="type", tag="RESOLVED", rename="camel", omit_defaults=True, frozen=True):
    """A reviewer chose `action_id`. `edited` is true iff a field value differs from its default."""

    id: str
    action_id: str
    external_ref: str
    feedbacks: dict[str, Any]
    by: Reviewer | None = None
    edited: bool = False


class TimedOut(msgspec.Struct, tag_field="type", tag="TIMED_OUT", rename="camel", frozen=True):
    """Nobody decided before the workflow's deadline."""

    id: str
    external_ref: str


HumanResult = Resolved | TimedOut


def is_resolved(result: HumanResult | None, action_id: str) -> TypeGuard[Resolved]:
    """True iff `result` is a resolution with this action id."""
    return isinstance(result, Resolved) and result.action_id == action_id
