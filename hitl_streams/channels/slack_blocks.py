"""Block Kit for the Slack channel: the request card, the batch card, the field modal, and parsing
a modal submission back into feedbacks.

Ids carried by Slack (we read them back from interactivity payloads):
- a request button: `action_id = "hitl:{actionId}"`, `value` = the request id;
- a batch item button: `action_id = "hitl:item:{n}:{actionId}"`, `value` = the item's request id;
- a "decide all" button: `action_id = "hitl:all:{actionId}"`, `value` = the batch id;
- a modal: `callback_id = "hitl:modal"`, `private_metadata` = JSON `{"requestId", "actionId"}`, one input
  block per field with `block_id` = the field key and `action_id = "value"`.
Every text from a request is sent as `plain_text` or escaped mrkdwn: a message cannot ping `@channel`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..actions import (
    Action,
    ConfirmField,
    Field,
    SelectField,
    TextAreaField,
    default_style,
    effective_label,
    effective_submit_label,
)

__all__ = [
    "MODAL_CALLBACK",
    "batch_blocks",
    "escape",
    "modal_values",
    "modal_view",
    "outcome_blocks",
    "request_blocks",
]

MODAL_CALLBACK = "hitl:modal"
_MAX_TEXT = 2900  # a section's text is capped at 3000 characters by Slack
_MAX_LABEL = 75  # button and option texts are capped at 75


def escape(text: str) -> str:
    """mrkdwn-escape: `&`, `<`, `>` are the control characters of Slack's markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _plain(text: str, size: int = _MAX_LABEL) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, size) or " ", "emoji": False}


def _readable(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _context_fields(context: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The request's context as "*key*\\nvalue" fields (Slack shows at most 10 per section)."""
    if not context:
        return []
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{escape(str(key))}*\n{escape(_readable(value))}", 2000)}
        for key, value in context.items()
    ]
    return [{"type": "section", "fields": fields[i : i + 10]} for i in range(0, len(fields), 10)]


def _button(action: Action, action_id: str, value: str) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(effective_label(action)),
        "action_id": action_id,
        "value": value,
    }
    style = action.style or default_style(action.id)
    if style in ("primary", "danger"):
        button["style"] = style
    return button


def _message_section(message: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(message), _MAX_TEXT)}}


def request_blocks(
    request_id: str, message: str, actions: Sequence[Action], context: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The card: message, context fields, one button per action."""
    blocks = [_message_section(message), *_context_fields(context)]
    if actions:
        buttons = [_button(a, f"hitl:{a.id}", request_id) for a in actions]
        for i in range(0, len(buttons), 25):  # an actions block holds at most 25 elements
            blocks.append({"type": "actions", "block_id": f"hitl:{request_id}:{i}", "elements": buttons[i : i + 25]})
    return blocks


def outcome_blocks(message: str, outcome: str, context: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The decided card: the message, its context and the outcome line instead of the buttons."""
    return [
        _message_section(message),
        *_context_fields(context),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(outcome)}]},
    ]


def batch_blocks(
    batch_id: str,
    message: str | None,
    actions: Sequence[Action],
    items: Sequence[tuple[str, str, str | None]],
    context: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """One message for a batch: each item (id, message, outcome or None) with its buttons, then
    "decide all" buttons for the actions without fields (a form per item is a modal each)."""
    blocks: list[dict[str, Any]] = []
    if message:
        blocks.append(_message_section(message))
    blocks.extend(_context_fields(context))
    pending = 0
    for n, (item_id, item_message, outcome) in enumerate(items):
        blocks.append({"type": "divider"})
        blocks.append(_message_section(item_message))
        if outcome is not None:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(outcome)}]})
            continue
        pending += 1
        elements = [_button(a, f"hitl:item:{n}:{a.id}", item_id) for a in actions][:25]
        blocks.append({"type": "actions", "block_id": f"hitl:item:{n}", "elements": elements})
    simple = [a for a in actions if not a.fields]
    if pending > 1 and simple:
        blocks.append({"type": "divider"})
        elements = []
        for a in simple[:25]:
            button = _button(a, f"hitl:all:{a.id}", batch_id)
            button["text"] = _plain(f"{effective_label(a)} all")
            elements.append(button)
        blocks.append({"type": "actions", "block_id": "hitl:all", "elements": elements})
    return blocks


def _input(key: str, spec: Field) -> dict[str, Any]:
    element: dict[str, Any]
    if isinstance(spec, SelectField):
        options = [{"text": _plain(o), "value": o} for o in spec.options[:100]]
        element = {"type": "static_select", "action_id": "value", "options": options}
        if spec.default is not None and spec.default in spec.options:
            element["initial_option"] = {"text": _plain(spec.default), "value": spec.default}
    elif isinstance(spec, ConfirmField):
        options = [{"text": _plain("Yes"), "value": "yes"}, {"text": _plain("No"), "value": "no"}]
        element = {"type": "radio_buttons", "action_id": "value", "options": options}
        if spec.default is not None:
            element["initial_option"] = options[0] if spec.default else options[1]
    else:
        element = {"type": "plain_text_input", "action_id": "value", "multiline": isinstance(spec, TextAreaField)}
        if spec.default:
            element["initial_value"] = spec.default
    return {
        "type": "input",
        "block_id": key,
        "optional": True,
        "label": _plain(spec.label, 2000),
        "element": element,
    }


def modal_view(request_id: str, message: str, action: Action) -> dict[str, Any]:
    """The form of an action with fields, with its defaults filled in."""
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": json.dumps({"requestId": request_id, "actionId": action.id}),
        "title": _plain(effective_label(action), 24),
        "submit": _plain(effective_submit_label(action), 24),
        "close": _plain(action.close_label or "Cancel", 24),
        "blocks": [_message_section(message), *(_input(key, spec) for key, spec in action.fields.items())],
    }


def modal_values(action: Action, state_values: Mapping[str, Any]) -> dict[str, Any]:
    """A modal submission's `view.state.values` as feedbacks for `action` (empty inputs left out, so the
    field's default applies; validation is the core's)."""
    feedbacks: dict[str, Any] = {}
    for key, spec in action.fields.items():
        block = state_values.get(key)
        entry = block.get("value") if isinstance(block, Mapping) else None
        if not isinstance(entry, Mapping):
            continue
        if entry.get("type") in ("static_select", "radio_buttons"):
            selected = entry.get("selected_option")
            value = selected.get("value") if isinstance(selected, Mapping) else None
            if value is None:
                continue
            feedbacks[key] = (value == "yes") if isinstance(spec, ConfirmField) else value
        else:
            text = entry.get("value")
            if isinstance(text, str) and text != "":
                feedbacks[key] = text
    return feedbacks
