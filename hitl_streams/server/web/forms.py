"""Decision forms: from a url-encoded body to an action id and feedbacks, with per-field errors.

Fields are posted as `f:<key>`. A confirm field posts a hidden `false` before its checkbox's `true`, so
an unchecked box is an explicit `false` (the last value wins). Values go to the server's own validation
and `edited` rule unchanged: the form never decides what counts as edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...actions import Action, action_by_id
from ...errors import FeedbackValidationError
from ..decisions import validate_feedbacks

__all__ = ["FIELD_PREFIX", "Decision", "parse_decision"]

FIELD_PREFIX = "f:"


@dataclass
class Decision:
    """What a decision form said: the action, the raw feedbacks, and the errors found before deciding."""

    action_id: str
    feedbacks: dict[str, Any] = field(default_factory=dict)
    field_errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.field_errors and self.error is None


def _last(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[-1] if values else None


def parse_decision(form: Mapping[str, list[str]], actions: list[Action]) -> Decision:
    """Read the action and its fields; check each field the way the server will, to show errors in place."""
    action_id = _last(form, "action") or ""
    decision = Decision(action_id=action_id)
    decision.feedbacks = {
        name[len(FIELD_PREFIX) :]: values[-1] for name, values in form.items() if name.startswith(FIELD_PREFIX)
    }
    action = action_by_id(actions, action_id)
    if action is None:
        decision.error = f'Unknown action "{action_id}".'
        return decision
    unknown = sorted(set(decision.feedbacks) - set(action.fields))
    if unknown:
        decision.error = f'Unknown feedback key: "{unknown[0]}"'
    for key, spec in action.fields.items():
        try:
            validate_feedbacks({key: spec}, {key: decision.feedbacks.get(key)})
        except FeedbackValidationError as exc:
            decision.field_errors[key] = str(exc)
    return decision
