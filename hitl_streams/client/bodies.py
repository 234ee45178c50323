"""Validated options and the JSON bodies the client POSTs (REF §6.2, §6.4), built in this one place.

`Ask` is what `request_human` was given, checked before anything is suspended or sent; `create_body`
turns it into the body of `POST /requests` or `POST /batches` with the resume tokens. Keys that are `None`
are left out, as `JSON.stringify` drops `undefined` in the TypeScript client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ..actions import Action, ActionsBuilder, validate_actions
from ..errors import ValidationError
from ..namespaces import validate_namespace
from ..reminders import ReminderEntry, encode_reminders
from .handles import BatchItem

__all__ = ["Anchorish", "Ask", "anchor_id", "create_body", "notify_body", "parse_ask", "server_schedule"]

Anchorish = Any
"""An `after=` anchor: a `Pending`, `Notified`, `HumanResult`, anything with a string `.id`, an `{"id": ...}`
mapping, or an id."""


@dataclass(frozen=True, slots=True)
class Ask:
    """The validated options of one `request_human` call."""

    message: str | None
    actions: list[Action]
    context: dict[str, Any] | None
    channel: str | None
    namespace: str | None
    after: str | None
    items: list[BatchItem] | None
    defaults_action_id: str | None
    schedule: dict[str, Any] | None = None
    """A server-side schedule (`{"timeout", "reminders"}`), sent for the server to keep (hitl-streams only)."""

    @property
    def batch(self) -> bool:
        return self.items is not None

    @property
    def size(self) -> int:
        """How many suspensions (resume tokens) the request needs."""
        return len(self.items) if self.items is not None else 1


def anchor_id(after: Anchorish) -> str | None:
    """The id of an `after=` anchor (only the id is sent)."""
    if after is None:
        return None
    if isinstance(after, str):
        value: object = after
    elif isinstance(after, Mapping):
        value = after.get("id")
    else:
        value = getattr(after, "id", None)
    if not isinstance(value, str) or not value:
        raise ValidationError("after must be a pending request, a notification, a result, or an id")
    return value


def _actions(actions: object) -> list[Action]:
    if isinstance(actions, ActionsBuilder):
        return actions.build()
    if not isinstance(actions, Sequence) or isinstance(actions, str | bytes):
        raise ValidationError("actions must be a list of actions (e.g. actions().approve().deny().build())")
    try:
        parsed = [a if isinstance(a, Action) else msgspec.convert(a, Action) for a in actions]
    except msgspec.ValidationError as exc:
        raise ValidationError(f"Invalid actions: {exc}") from None
    validate_actions(parsed)
    return parsed


def _items(items: object) -> list[BatchItem]:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise ValidationError("items must be a list of {message, defaults?} items")
    if not items:
        raise ValidationError("waitForHuman needs at least one item when items is provided.")
    parsed: list[BatchItem] = []
    for index, item in enumerate(items):
        try:
            parsed.append(item if isinstance(item, BatchItem) else msgspec.convert(item, BatchItem))
        except msgspec.ValidationError as exc:
            raise ValidationError(f"items[{index}]: {exc}") from None
    return parsed


def _optional_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"{name} must be a string")


def _object(value: object, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a mapping (a JSON object)")
    try:  # JSON-safe now, not a surprise at send time
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValidationError(f"{name} must be JSON-serializable: {exc}") from None
    return dict(value)


def parse_ask(
    *,
    message: object,
    actions: object,
    context: object,
    channel: object,
    namespace: object,
    after: Anchorish,
    items: object,
    defaults_action_id: object,
) -> Ask:
    """Check every option (REF §6.2 `validateWaitForHumanOptions`, and more): `ValidationError` if wrong."""
    parsed_actions = _actions(actions)
    parsed_items = None if items is None else _items(items)
    text = _optional_str(message, "message")
    if parsed_items is None and not text:
        raise ValidationError("waitForHuman requires message when items is absent.")
    defaults_id = _optional_str(defaults_action_id, "defaults_action_id")
    if defaults_id is not None and all(a.id != defaults_id for a in parsed_actions):
        raise ValidationError(f'defaultsActionId "{defaults_id}" not found in actions.')
    return Ask(
        message=text,
        actions=parsed_actions,
        context=_object(context, "context"),
        channel=_optional_str(channel, "channel"),
        namespace=None if namespace is None else validate_namespace(namespace),
        after=anchor_id(after),
        items=parsed_items,
        defaults_action_id=defaults_id,
    )


def server_schedule(timeout: float | None, reminders: Sequence[ReminderEntry]) -> dict[str, Any] | None:
    """The `schedule` member that asks a hitl-streams server to keep the timeout and reminders itself
    (`hitl_streams.server.schedules`); None when there is nothing to keep."""
    if timeout is None and not reminders:
        return None
    schedule: dict[str, Any] = {"reminders": encode_reminders(reminders)}
    if timeout is not None:
        schedule["timeout"] = timeout
    return schedule


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _after(after: str | None) -> dict[str, str] | None:
    return None if after is None else {"id": after}


def create_body(ask: Ask, tokens: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The path and body that create `ask` with these resume tokens (one per item for a batch)."""
    actions = msgspec.to_builtins(ask.actions)
    if ask.items is None:
        body = {
            "token": tokens[0],
            "message": ask.message,
            "actions": actions,
            "context": ask.context,
            "channel": ask.channel,
            "namespace": ask.namespace,
            "after": _after(ask.after),
            "schedule": ask.schedule,
        }
        return "/requests", _drop_none(body)
    items = [
        _drop_none({"token": token, "message": item.message, "defaults": item.defaults})
        for token, item in zip(tokens, ask.items, strict=True)
    ]
    body = {
        "message": ask.message,
        "channel": ask.channel,
        "actions": actions,
        "context": ask.context,
        "namespace": ask.namespace,
        "defaultsActionId": ask.defaults_action_id,
        "after": _after(ask.after),
        "items": items,
        "schedule": ask.schedule,
    }
    return "/batches", _drop_none(body)


def notify_body(*, message: object, after: Anchorish, on: object, channel: object, detail: object) -> dict[str, Any]:
    """The body of `POST /notifications`, validated."""
    if not isinstance(message, str) or not message:
        raise ValidationError("notify requires a non-empty message")
    body = {
        "message": message,
        "after": _after(anchor_id(after)),
        "on": _optional_str(on, "on"),
        "channel": _optional_str(channel, "channel"),
        "detail": _object(detail, "detail"),
    }
    return _drop_none(body)
