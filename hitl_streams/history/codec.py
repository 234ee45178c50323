"""Bytes ⇄ records for values stored in Redis.

Encoding is canonical (msgspec, field order of the TypeScript writer, no whitespace), so a replay
reproduces live values byte for byte. Decoding takes our own values on a fast typed path and falls back
to a tolerant path for shapes the TypeScript SDK wrote over its history: legacy action shapes (REF §5.10),
records without a namespace, and values damaged by its cjson re-encoding (empty arrays stored as `{}`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ..actions import normalize_actions
from ..records import BatchRecord, HumanRequestRecord, NotifyDeliveryRecord, TimelineEntry

__all__ = ["Subject", "decode_batch", "decode_notify", "decode_request", "decode_timeline_entry", "encode"]

Subject = HumanRequestRecord | BatchRecord | TimelineEntry | NotifyDeliveryRecord
"""Anything stored under its own key: the subjects events are about."""

_T = TypeVar("_T", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()
_request = msgspec.json.Decoder(HumanRequestRecord)
_batch = msgspec.json.Decoder(BatchRecord)
_entry = msgspec.json.Decoder(TimelineEntry)
_notify = msgspec.json.Decoder(NotifyDeliveryRecord)
_any = msgspec.json.Decoder()


def encode(record: Subject) -> bytes:
    """The canonical JSON of a record."""
    return _encoder.encode(record)


def _fix_actions(data: dict[str, Any], *, required: bool) -> None:
    raw = data.get("actions")
    if raw is None and not required:
        return
    legacy_fields = data.get("fields") if isinstance(data.get("fields"), dict) else None
    definitions = raw if isinstance(raw, list) else list(raw.values()) if isinstance(raw, dict) else []
    for definition in [*definitions, {"fields": legacy_fields or {}}]:
        _repair_options(definition)
    data["actions"] = msgspec.to_builtins(normalize_actions(raw, legacy_fields))
    data.pop("fields", None)


def _repair_options(action: Any) -> None:
    # cjson stored an empty `options: []` as `options: {}`.
    fields = action.get("fields") if isinstance(action, dict) else None
    for spec in (fields or {}).values() if isinstance(fields, dict) else ():
        if isinstance(spec, dict) and spec.get("options") == {}:
            spec["options"] = []


def _empty_to_none(data: dict[str, Any], key: str) -> None:
    if data.get(key) in ({}, []):
        data.pop(key)


def decode_request(raw: bytes | str) -> HumanRequestRecord:
    """A stored human request, normalized as the TypeScript `parseHumanRequest` does."""
    try:
        record = _request.decode(raw)
    except msgspec.ValidationError:
        data = _any.decode(raw)
        data.setdefault("namespace", "global")
        _fix_actions(data, required=True)
        _empty_to_none(data, "externalIds")
        if isinstance(data.get("result"), dict) and data["result"].get("feedbacks") == []:
            data["result"]["feedbacks"] = {}
        return msgspec.convert(data, HumanRequestRecord)
    if record.external_ids == {}:
        record.external_ids = None
    if any(a.id == "submit" for a in record.actions):
        record.actions = normalize_actions(msgspec.to_builtins(record.actions))
    return record


def decode_batch(raw: bytes | str) -> BatchRecord:
    """A stored batch, normalized as the TypeScript `parseBatch` does."""
    try:
        batch = _batch.decode(raw)
    except msgspec.ValidationError:
        data = _any.decode(raw)
        _fix_actions(data, required=False)
        _empty_to_none(data, "externalIds")
        return msgspec.convert(data, BatchRecord)
    if batch.external_ids == {}:
        batch.external_ids = None
    if batch.actions is not None and any(a.id == "submit" for a in batch.actions):
        batch.actions = normalize_actions(msgspec.to_builtins(batch.actions))
    return batch


def decode_timeline_entry(raw: bytes | str) -> TimelineEntry:
    return _entry.decode(raw)


def decode_notify(raw: bytes | str) -> NotifyDeliveryRecord:
    return _notify.decode(raw)
