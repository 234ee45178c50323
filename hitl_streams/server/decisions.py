"""Turning a reviewer's decision into a `Resolved` result: feedback validation and the `edited` rule.

Messages are the TypeScript SDK's (REF §5.7). One deliberate difference: feedbacks sent for an action
without fields are rejected like unknown keys instead of being silently dropped (REF §10.6 item 36).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..actions import Action, ConfirmField, Field, SelectField, action_by_id
from ..errors import FeedbackValidationError, UnknownActionError
from ..results import HumanResult, Resolved, Reviewer

__all__ = ["build_result", "same_decision", "validate_feedbacks"]


def _value(key: str, spec: Field, value: Any) -> str | bool:
    if value is None:
        default: str | bool | None = spec.default
        if default is not None:
            return default
        raise FeedbackValidationError(f'Missing value for feedback "{key}"')
    if isinstance(spec, ConfirmField):
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return bool(value == "true")
        raise FeedbackValidationError(f'Feedback "{key}" must be a boolean')
    if isinstance(spec, SelectField):
        if not isinstance(value, str) or value not in spec.options:
            raise FeedbackValidationError(f'Feedback "{key}" must be one of: {", ".join(spec.options)}')
        return value
    if not isinstance(value, str):
        raise FeedbackValidationError(f'Feedback "{key}" must be a string')
    return value


def validate_feedbacks(fields: Mapping[str, Field], raw: object) -> dict[str, Any]:
    """Check raw values against the fields; return every field's value, defaults filled in."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise FeedbackValidationError("Feedbacks must be an object")
    for key in raw:
        if key not in fields:
            raise FeedbackValidationError(f'Unknown feedback key: "{key}"')
    return {key: _value(key, spec, raw.get(key)) for key, spec in fields.items()}


def build_result(
    request_id: str,
    actions: Sequence[Action],
    action_id: str,
    feedbacks: object,
    *,
    external_ref: str,
    by: Reviewer | None,
) -> Resolved:
    """The result of choosing `action_id`. `edited` iff some value differs from its field's default
    (a field without a default that receives a value counts as edited, as in the reference)."""
    action = action_by_id(actions, action_id)
    if action is None:
        raise UnknownActionError(action_id)
    values = validate_feedbacks(action.fields, feedbacks)
    edited = any(
        spec.default is None or type(values[key]) is not type(spec.default) or values[key] != spec.default
        for key, spec in action.fields.items()
    )
    return Resolved(
        id=request_id, action_id=action_id, external_ref=external_ref, feedbacks=values, by=by, edited=edited
    )


def same_decision(stored: HumanResult | None, decision: Resolved) -> bool:
    """A repeated decision: the same action with the same feedbacks (the reviewer may differ)."""
    return (
        isinstance(stored, Resolved)
        and stored.action_id == decision.action_id
        and stored.feedbacks == decision.feedbacks
    )
