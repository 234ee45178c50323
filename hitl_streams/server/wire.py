"""The internal HTTP API's bodies (REF §1.4): parsing what the workflow client sends, encoding replies.

Parsing is strict where the reference was not (REF §10.6 item 34): every malformed body is a
`ValidationError` (HTTP 400) with a message naming the problem, never a crash. Every field is bounded
(`hitl_streams.limits`): a field out of bounds is a 400, a batch too large to store a `TooLargeError`
(413). Messages the TypeScript server had are kept word for word. Replies are encoded with the
TypeScript key order, so a reply is byte-identical to what the reference server sends for the same data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from ..actions import Action, validate_actions
from ..errors import TooLargeError, ValidationError
from ..limits import (
    ACTION_ID_PATTERN,
    MAX_ACTION_ID,
    MAX_ACTIONS,
    MAX_BATCH_ITEMS,
    MAX_BATCH_STORED_BYTES,
    MAX_CHANNEL,
    MAX_FIELD_KEY,
    MAX_FIELDS_PER_ACTION,
    MAX_LABEL,
    MAX_OPTIONS,
    MAX_TOKEN,
)
from ..namespaces import resolve_namespace
from ..results import HumanResult, Resolved, Reviewer, TimedOut
from .schedules import ServerSchedule, parse_schedule

__all__ = [
    "Anchor",
    "BatchAnchor",
    "CreateBatchBody",
    "CreateBatchItem",
    "CreateRequestBody",
    "NotifyBody",
    "RemindBody",
    "encode",
    "encode_error",
    "encode_result",
    "encode_results",
    "parse_actions",
    "parse_create_batch",
    "parse_create_request",
    "parse_notify",
    "parse_remind",
    "stored_batch_bytes",
]


# --- bodies ----------------------------------------------------------------------------------------------
class CreateRequestBody(msgspec.Struct, kw_only=True, frozen=True):
    """`POST requests`. `after` is the anchor id (the client sends `{"after": {"id": ...}}`)."""

    token: str
    message: str
    actions: list[Action]
    context: dict[str, Any] | None = None
    channel: str | None = None
    namespace: str = "global"
    after: str | None = None
    schedule: ServerSchedule | None = None
    """The server-side schedule extension (`hitl_streams.server.schedules`); the TypeScript client never sends it."""


class CreateBatchItem(msgspec.Struct, kw_only=True, frozen=True):
    token: str
    message: str
    defaults: dict[str, Any] | None = None


class CreateBatchBody(msgspec.Struct, kw_only=True, frozen=True):
    """`POST batches`."""

    items: list[CreateBatchItem]
    actions: list[Action]
    message: str | None = None
    channel: str | None = None
    context: dict[str, Any] | None = None
    namespace: str = "global"
    defaults_action_id: str | None = None
    after: str | None = None
    schedule: ServerSchedule | None = None


class NotifyBody(msgspec.Struct, kw_only=True, frozen=True):
    """`POST notifications`. `after` (an anchor id) wins over `on` when both are given."""

    message: str
    channel: str | None = None
    after: str | None = None
    on: str | None = None
    detail: dict[str, Any] | None = None


class RemindBody(msgspec.Struct, kw_only=True, frozen=True):
    """`POST {requests|batches}/{id}/remind`: a threaded reminder, or an escalation to another channel."""

    kind: Literal["remind", "escalate"] = "remind"
    message: str | None = None
    channel: str | None = None
    mode: Literal["notify", "redeliver"] = "notify"


# --- parsing helpers -------------------------------------------------------------------------------------
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_RECORD_OVERHEAD = 512
"""Bytes a stored request record takes besides its message, token, actions and context (ids, keys,
timestamps, indexes), for the batch size estimate."""


def _check_token(token: str, what: str = "token") -> str:
    if len(token) > MAX_TOKEN:
        raise ValidationError(f"{what} must be at most {MAX_TOKEN} characters")
    return token


def _check_channel(channel: str | None, what: str = "channel") -> str | None:
    if channel is None:
        return None
    if len(channel) > MAX_CHANNEL:
        raise ValidationError(f"{what} must be at most {MAX_CHANNEL} characters")
    if _CONTROL.search(channel) is not None:
        raise ValidationError(f"{what} must not contain control characters")
    return channel


def _check_label(value: str | None, what: str) -> None:
    if value is not None and len(value) > MAX_LABEL:
        raise ValidationError(f"Invalid actions: {what} must be at most {MAX_LABEL} characters")


def _check_action_bounds(action: Action) -> None:
    if len(action.id) > MAX_ACTION_ID or ACTION_ID_PATTERN.fullmatch(action.id) is None:
        raise ValidationError(
            f"Invalid actions: an action id must be at most {MAX_ACTION_ID} characters of letters, digits, "
            '"_", ".", ":" or "-"'
        )
    for what, label in (
        ("label", action.label),
        ("submitLabel", action.submit_label),
        ("closeLabel", action.close_label),
    ):
        _check_label(label, f'action "{action.id}" {what}')
    if len(action.fields) > MAX_FIELDS_PER_ACTION:
        raise ValidationError(f'Invalid actions: action "{action.id}" has more than {MAX_FIELDS_PER_ACTION} fields')
    for key, spec in action.fields.items():
        if not key or len(key) > MAX_FIELD_KEY:
            raise ValidationError(f"Invalid actions: a field key must be 1 to {MAX_FIELD_KEY} characters")
        _check_label(spec.label, f'field "{key}" label')
        options = getattr(spec, "options", None)
        if options is not None:
            if len(options) > MAX_OPTIONS:
                raise ValidationError(f'Invalid actions: select field "{key}" has more than {MAX_OPTIONS} options')
            for option in options:
                _check_label(option, f'an option of select field "{key}"')


def _object(data: object, what: str = "body") -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError(f"The {what} must be a JSON object")
    return data


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"{key} must be a string")


def _optional_object(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise ValidationError(f"{key} must be an object")


def _after(data: Mapping[str, Any]) -> str | None:
    value = data.get("after")
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    raise ValidationError('after must be an object with a string "id"')


def _namespace(data: Mapping[str, Any]) -> str:
    return resolve_namespace(data.get("namespace"))


def parse_actions(raw: Sequence[Any]) -> list[Action]:
    """Actions as the client sends them: shapes checked, ids unique, non-empty and bounded."""
    if len(raw) > MAX_ACTIONS:
        raise ValidationError(f"Invalid actions: at most {MAX_ACTIONS} actions")
    try:
        parsed = msgspec.convert(raw, list[Action])
    except msgspec.ValidationError as exc:
        raise ValidationError(f"Invalid actions: {exc}") from None
    for action in parsed:
        if not action.id:
            raise ValidationError("Invalid actions: an action id must be a non-empty string")
        _check_action_bounds(action)
        for key, spec in action.fields.items():
            options = getattr(spec, "options", None)
            if options is not None and not options:
                raise ValidationError(f'Invalid actions: select field "{key}" needs at least one option')
    validate_actions(parsed)
    return parsed


def _non_empty_list(data: Mapping[str, Any], key: str) -> list[Any] | None:
    value = data.get(key)
    return value if isinstance(value, list) and value else None


def parse_create_request(data: object) -> CreateRequestBody:
    body = _object(data)
    token, message, raw_actions = body.get("token"), body.get("message"), _non_empty_list(body, "actions")
    if not isinstance(token, str) or not isinstance(message, str) or raw_actions is None:
        raise ValidationError("token, message, and a non-empty actions array are required")
    return CreateRequestBody(
        token=_check_token(token),
        message=message,
        actions=parse_actions(raw_actions),
        context=_optional_object(body, "context"),
        channel=_check_channel(_optional_str(body, "channel")),
        namespace=_namespace(body),
        after=_after(body),
        schedule=parse_schedule(body.get("schedule")),
    )


def _batch_item(index: int, raw: object) -> CreateBatchItem:
    if not isinstance(raw, dict) or not isinstance(raw.get("token"), str) or not isinstance(raw.get("message"), str):
        raise ValidationError(f"items[{index}] needs a string token and a string message")
    return CreateBatchItem(
        token=_check_token(raw["token"], f"items[{index}].token"),
        message=raw["message"],
        defaults=_optional_object(raw, "defaults"),
    )


def parse_create_batch(data: object) -> CreateBatchBody:
    body = _object(data)
    raw_items = _non_empty_list(body, "items")
    if raw_items is None:
        raise ValidationError("items must be a non-empty array")
    if len(raw_items) > MAX_BATCH_ITEMS:
        raise TooLargeError(f"A batch takes at most {MAX_BATCH_ITEMS} items (got {len(raw_items)})")
    raw_actions = _non_empty_list(body, "actions")
    if raw_actions is None:
        raise ValidationError("actions must be a non-empty array")
    actions = parse_actions(raw_actions)
    namespace = _namespace(body)
    items = [_batch_item(i, raw) for i, raw in enumerate(raw_items)]
    if len({item.token for item in items}) != len(items):
        raise ValidationError("Each batch item needs its own token")
    parsed = CreateBatchBody(
        items=items,
        actions=actions,
        message=_optional_str(body, "message"),
        channel=_check_channel(_optional_str(body, "channel")),
        context=_optional_object(body, "context"),
        namespace=namespace,
        defaults_action_id=_optional_str(body, "defaultsActionId"),
        after=_after(body),
        schedule=parse_schedule(body.get("schedule")),
    )
    stored = stored_batch_bytes(parsed)
    if stored > MAX_BATCH_STORED_BYTES:
        raise TooLargeError(
            f"Batch too large to store: its {len(items)} item records would take about {stored} bytes "
            f"(limit {MAX_BATCH_STORED_BYTES}); each item record carries the batch's context and actions, "
            "so send a smaller context or fewer items"
        )
    return parsed


def stored_batch_bytes(body: CreateBatchBody) -> int:
    """About how many bytes the batch's item records take once stored: each one carries the batch's
    context and actions besides its own message, token and defaults."""
    shared = len(_encoder.encode(body.actions)) + _RECORD_OVERHEAD
    if body.context is not None:
        shared += len(_encoder.encode(body.context))
    total = 0
    for item in body.items:
        total += shared + len(_encoder.encode(item.message)) + len(_encoder.encode(item.token))
        if item.defaults is not None:
            total += len(_encoder.encode(item.defaults))
    return total


def parse_notify(data: object) -> NotifyBody:
    body = _object(data)
    message = body.get("message")
    if not isinstance(message, str):
        raise ValidationError("message must be a string")
    return NotifyBody(
        message=message,
        channel=_check_channel(_optional_str(body, "channel")),
        after=_after(body),
        on=_optional_str(body, "on") or None,
        detail=_optional_object(body, "detail"),
    )


def parse_remind(data: object) -> RemindBody:
    body = _object(data)
    kind = body.get("kind", "remind")
    if kind is None:
        kind = "remind"
    message = _optional_str(body, "message")
    if kind == "remind":
        return RemindBody(kind="remind", message=message)
    if kind != "escalate":
        raise ValidationError('kind must be "remind" or "escalate"')
    channel = body.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ValidationError("an escalation needs a channel")
    _check_channel(channel)
    mode = body.get("mode")
    if mode not in (None, "notify", "redeliver"):
        raise ValidationError('mode must be "notify" or "redeliver"')
    return RemindBody(
        kind="escalate", message=message, channel=channel, mode="redeliver" if mode == "redeliver" else "notify"
    )


# --- replies ---------------------------------------------------------------------------------------------
class Anchor(msgspec.Struct, rename="camel", frozen=True):
    """`{id, externalRef}`: what create-request and notify return (a timeline anchor)."""

    id: str
    external_ref: str


class BatchAnchor(msgspec.Struct, rename="camel", frozen=True):
    """`{batchId, ids, externalRef}`: what create-batch returns; `ids` in item order."""

    batch_id: str
    ids: list[str]
    external_ref: str


class _ResolvedWire(msgspec.Struct, tag_field="type", tag="RESOLVED", rename="camel", omit_defaults=True, kw_only=True):
    """`Resolved` in the key order the TypeScript server writes (`feedbacks` always present)."""

    action_id: str
    id: str
    external_ref: str
    by: Reviewer | None = None
    feedbacks: dict[str, Any]
    edited: bool = False


def _wire(result: HumanResult) -> _ResolvedWire | TimedOut:
    if isinstance(result, Resolved):
        return _ResolvedWire(
            action_id=result.action_id,
            id=result.id,
            external_ref=result.external_ref,
            by=result.by,
            feedbacks=result.feedbacks,
            edited=result.edited,
        )
    return result


_encoder = msgspec.json.Encoder()


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def encode_result(result: HumanResult) -> bytes:
    """`{"result": ...}`, the reply of a request timeout."""
    return _encoder.encode({"result": _wire(result)})


def encode_results(results: Sequence[HumanResult]) -> bytes:
    """`{"results": [...]}`, the reply of a batch timeout, in item order."""
    return _encoder.encode({"results": [_wire(r) for r in results]})


def encode_error(message: str) -> bytes:
    return _encoder.encode({"error": message})
