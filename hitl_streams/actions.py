"""Actions a reviewer can take and the fields they can edit, with the builders and validation rules.

JSON shapes match the TypeScript `HumanActionDef` and `HitlField` (camelCase, absent optionals omitted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from .errors import ValidationError

__all__ = [
    "Action",
    "ActionStyle",
    "ActionsBuilder",
    "ConfirmField",
    "Field",
    "SelectField",
    "TextAreaField",
    "TextField",
    "action_by_id",
    "actions",
    "default_label",
    "default_style",
    "effective_close_label",
    "effective_label",
    "effective_style",
    "effective_submit_label",
    "field",
    "normalize_actions",
    "validate_actions",
]

ActionStyle = Literal["primary", "danger", "default"]


class TextField(msgspec.Struct, tag_field="kind", tag="text", omit_defaults=True, frozen=True):
    """A single-line text input."""

    label: str
    default: str | None = None


class TextAreaField(msgspec.Struct, tag_field="kind", tag="textarea", omit_defaults=True, frozen=True):
    """A multi-line text input."""

    label: str
    default: str | None = None


class SelectField(msgspec.Struct, tag_field="kind", tag="select", omit_defaults=True, frozen=True):
    """A choice among fixed options."""

    label: str
    options: list[str]
    default: str | None = None


class ConfirmField(msgspec.Struct, tag_field="kind", tag="confirm", omit_defaults=True, frozen=True):
    """A yes/no checkbox."""

    label: str
    default: bool | None = None


Field = TextField | TextAreaField | SelectField | ConfirmField


class Action(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """One button a reviewer can press, optionally opening a form of `fields`."""

    id: str
    label: str | None = None
    submit_label: str | None = None
    close_label: str | None = None
    style: ActionStyle | None = None
    fields: dict[str, Field] = msgspec.field(default_factory=dict)


def default_label(action_id: str) -> str:
    return {"approve": "Approve", "deny": "Deny"}.get(action_id, action_id)


def default_style(action_id: str) -> ActionStyle:
    return "primary" if action_id == "approve" else "danger" if action_id == "deny" else "default"


def effective_label(action: Action) -> str:
    return action.label if action.label is not None else default_label(action.id)


def effective_submit_label(action: Action) -> str:
    if action.submit_label is not None:
        return action.submit_label
    return effective_label(action)


def effective_close_label(action: Action) -> str:
    return action.close_label if action.close_label is not None else "Cancel"


def effective_style(action: Action) -> ActionStyle:
    return action.style if action.style is not None else default_style(action.id)


def action_by_id(actions: Sequence[Action], action_id: str) -> Action | None:
    return next((a for a in actions if a.id == action_id), None)


def validate_actions(actions: Sequence[Action]) -> None:
    """At least one action, unique ids (the TypeScript messages, as a `ValidationError`)."""
    if len(actions) < 1:
        raise ValidationError("waitForHuman requires at least one action.")
    seen: set[str] = set()
    for action in actions:
        if action.id in seen:
            raise ValidationError(f'Duplicate action id "{action.id}".')
        seen.add(action.id)


def normalize_actions(raw: Any, legacy_fields: Mapping[str, Any] | None = None) -> list[Action]:
    """Read actions stored in any shape the TypeScript SDK ever wrote (REF §5.10 `normalizeActions`).

    An array is taken as is, with the legacy id `"submit"` renamed `"approve"`; a legacy object
    `{submit?, deny?}` becomes `[approve, deny]`; else non-empty legacy `fields` become one approve action
    with those fields; else a single bare approve action.
    """
    try:
        if isinstance(raw, list):
            if not all(isinstance(item, dict) for item in raw):
                raise ValidationError("Invalid actions: every action must be an object")
            items = [{**item, "id": "approve"} if item.get("id") == "submit" else item for item in raw]
            return msgspec.convert(items, list[Action])
        if isinstance(raw, dict):
            legacy: list[dict[str, Any]] = []
            # JavaScript truthiness: any object counts, even `{}`; null and absent do not.
            if isinstance(raw.get("submit"), dict):
                legacy.append({"id": "approve", **raw["submit"]})
            if isinstance(raw.get("deny"), dict):
                legacy.append({"id": "deny", **raw["deny"]})
            if legacy:
                # A legacy spread `{id, ...def}` lets a stored id override the position's id, as in TS.
                return msgspec.convert(legacy, list[Action])
        if legacy_fields:
            return [Action(id="approve", fields=msgspec.convert(dict(legacy_fields), dict[str, Field]))]
    except msgspec.ValidationError as exc:
        raise ValidationError(f"Invalid actions: {exc}") from None
    return [Action(id="approve")]


class _FieldBuilders:
    """`field.text(...)`, `field.textarea(...)`, `field.select(...)`, `field.confirm(...)`."""

    @staticmethod
    def text(*, label: str, default: str | None = None) -> TextField:
        return TextField(label=label, default=default)

    @staticmethod
    def textarea(*, label: str, default: str | None = None) -> TextAreaField:
        return TextAreaField(label=label, default=default)

    @staticmethod
    def select(*, label: str, options: Sequence[str], default: str | None = None) -> SelectField:
        return SelectField(label=label, options=list(options), default=default)

    @staticmethod
    def confirm(*, label: str, default: bool | None = None) -> ConfirmField:
        return ConfirmField(label=label, default=default)


field = _FieldBuilders()


class ActionsBuilder:
    """An immutable builder: every call returns a new builder; `build()` returns a `list[Action]`."""

    __slots__ = ("_actions",)

    def __init__(self, built: tuple[Action, ...] = ()) -> None:
        self._actions = built

    def custom(
        self,
        action_id: str,
        *,
        label: str | None = None,
        submit_label: str | None = None,
        close_label: str | None = None,
        style: ActionStyle | None = None,
        fields: Mapping[str, Field] | None = None,
    ) -> ActionsBuilder:
        action = Action(
            id=action_id,
            label=label,
            submit_label=submit_label,
            close_label=close_label,
            style=style,
            fields=dict(fields or {}),
        )
        return ActionsBuilder((*self._actions, action))

    def approve(
        self,
        *,
        label: str | None = None,
        submit_label: str | None = None,
        close_label: str | None = None,
        style: ActionStyle | None = None,
        fields: Mapping[str, Field] | None = None,
    ) -> ActionsBuilder:
        return self.custom(
            "approve", label=label, submit_label=submit_label, close_label=close_label, style=style, fields=fields
        )

    def deny(
        self,
        *,
        label: str | None = None,
        submit_label: str | None = None,
        close_label: str | None = None,
        style: ActionStyle | None = None,
        fields: Mapping[str, Field] | None = None,
    ) -> ActionsBuilder:
        return self.custom(
            "deny", label=label, submit_label=submit_label, close_label=close_label, style=style, fields=fields
        )

    def build(self) -> list[Action]:
        return list(self._actions)


def actions() -> ActionsBuilder:
    """Start an actions builder: `actions().approve(...).deny(...).build()`."""
    return ActionsBuilder()
