"""The outcome line a channel shows once a request is decided ("Approved by Ana with edits", "Timed out")."""

from __future__ import annotations

from collections.abc import Sequence

from ..actions import Action, action_by_id, effective_label
from ..results import HumanResult, Resolved

__all__ = ["outcome_line", "reviewer_name"]


def reviewer_name(result: Resolved) -> str | None:
    by = result.by
    if by is None:
        return None
    return by.name or by.email or by.id


def outcome_line(result: HumanResult, actions: Sequence[Action] = ()) -> str:
    """`Approved[ by X][ with edits]`, `Denied[ by X][ — reason]`, `{label}[ by X][ with edits]`, `Timed out`."""
    if not isinstance(result, Resolved):
        return "Timed out"
    action = action_by_id(actions, result.action_id)
    if result.action_id == "approve":
        what = "Approved"
    elif result.action_id == "deny":
        what = "Denied"
    else:
        what = effective_label(action) if action is not None else result.action_id
    name = reviewer_name(result)
    line = what + (f" by {name}" if name else "")
    reason = result.feedbacks.get("reason") if result.action_id == "deny" else None
    if isinstance(reason, str) and reason.strip():
        line += f" — {reason.strip()}"
    elif result.edited:
        line += " with edits"
    return line
