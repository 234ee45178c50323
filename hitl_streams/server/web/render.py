"""Jinja2 templates of the web inbox, autoescaped, with the few filters the pages need."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
import msgspec
from msgspec import UnsetType

from ...actions import (
    Action,
    ConfirmField,
    SelectField,
    TextAreaField,
    TextField,
    action_by_id,
    default_style,
    effective_label,
    effective_style,
    effective_submit_label,
)
from ...history.events import Event, RequestResolved
from ...results import Resolved, Reviewer

__all__ = ["Renderer"]


def _when(iso: str | None) -> str:
    """`2026-11-27T07:03:12.345Z` as `2026-11-27 07:03:12 UTC` (the raw value if it does not parse)."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: Any) -> str:
    """Any JSON value as indented JSON text (escaped by the template like any other string)."""
    return json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False, sort_keys=False)


def _event_type(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


def _event_detail(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(event)
    for envelope in ("type", "v", "at", "actor"):
        data.pop(envelope, None)
    return data


_DESCRIPTIONS = {
    "request.created": "Created",
    "request.imported": "Imported",
    "request.external_id_set": "Linked to a channel message",
    "request.timed_out": "Timed out",
    "request.delivered": "Delivered",
    "request.redelivered": "Delivered again",
    "request.reminded": "Reminder sent",
    "request.escalated": "Escalated",
    "batch.created": "Batch created",
    "batch.external_id_set": "Linked to a channel message",
    "batch.imported": "Batch imported",
    "batch.delivered": "Batch delivered",
    "batch.reminded": "Batch reminder sent",
    "batch.escalated": "Batch escalated",
    "batch.redelivered": "Batch delivered again",
    "batch.timed_out": "Batch timed out",
    "timeline.appended": "Message in the thread",
    "notification.sent": "Notification sent",
    "resume.attempted": "Workflow resume attempted",
    "resume.succeeded": "Workflow resumed",
    "resume.failed": "Workflow resume failed",
}


def _describe(event: Event, actions: list[Action] | None) -> str:
    """A short human sentence for an audit event."""
    if isinstance(event, RequestResolved):
        label = _action_label(actions or [], event.result.action_id)
        return f"Decided: {label}" + (" (edited)" if event.result.edited else "")
    tag = _event_type(event)
    return _DESCRIPTIONS.get(tag, tag)


def _actor(event: Event) -> Reviewer | None:
    return None if isinstance(event.actor, UnsetType) else event.actor


def _style_of(actions: list[Action], action_id: str) -> str:
    found = action_by_id(actions, action_id)
    return effective_style(found) if found is not None else default_style(action_id)


def _field_kind(spec: Any) -> str:
    if isinstance(spec, TextAreaField):
        return "textarea"
    if isinstance(spec, SelectField):
        return "select"
    if isinstance(spec, ConfirmField):
        return "confirm"
    assert isinstance(spec, TextField)
    return "text"


def _action_label(actions: list[Action], action_id: str) -> str:
    found = next((a for a in actions if a.id == action_id), None)
    return effective_label(found) if found is not None else action_id


class Renderer:
    """Renders a template by name to UTF-8 bytes."""

    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("hitl_streams.server.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(when=_when, pretty=_pretty, event_type=_event_type, event_detail=_event_detail)
        self._env.globals.update(
            label=effective_label,
            submit_label=effective_submit_label,
            style=effective_style,
            field_kind=_field_kind,
            action_label=_action_label,
            describe=_describe,
            actor_of=_actor,
            style_of=_style_of,
            is_resolved=lambda result: isinstance(result, Resolved),
        )

    def render(self, name: str, **context: Any) -> bytes:
        return self._env.get_template(name).render(**context).encode()
