"""How one event changes the subject it is about: `(event, record before) -> record after`.

This is the record semantics of the State protocol written once. Live writes and replays both go
through it, then through the projection steps in `migrations/`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ..records import BatchRecord, HumanRequestRecord, NotifyDeliveryRecord
from . import events as ev
from .codec import Subject, decode_batch, decode_notify, decode_request
from .keys import Keys

__all__ = ["Change", "apply", "key_of", "subject_ref"]


@dataclass(frozen=True, slots=True)
class Change:
    """What one event did: the event, the key names to project under, the subject before and after.

    `before` and `after` are both `None` for audit events, which change no record.
    """

    event: ev.Event
    keys: Keys
    before: Subject | None
    after: Subject | None


Decoder = Callable[[bytes | str], Subject]


def subject_ref(event: ev.Event, keys: Keys) -> tuple[str, Decoder] | None:
    """The key (and its decoder) whose current value reducing `event` needs; `None` if it needs none."""
    match event:
        case ev.RequestExternalIdSet() | ev.RequestResolved() | ev.RequestTimedOut():
            return keys.req(event.id), decode_request
        case ev.BatchExternalIdSet():
            return keys.batch(event.id), decode_batch
        case ev.NotifyExternalIdSet():
            return keys.notify(event.id), decode_notify
        case _:
            return None


def key_of(record: Subject, keys: Keys) -> str:
    """The key a subject is stored under."""
    match record:
        case HumanRequestRecord():
            return keys.req(record.id)
        case BatchRecord():
            return keys.batch(record.id)
        case NotifyDeliveryRecord():
            return keys.notify(record.id)
        case _:
            return keys.timeline_entry(record.id)


def _with_external_id(external_ids: dict[str, str] | None, key: str, value: str) -> dict[str, str]:
    return {**(external_ids or {}), key: value}


def apply(event: ev.Event, before: Subject | None, keys: Keys) -> Change:
    """Reduce one event. A mutation whose subject is missing (a damaged history) changes nothing."""
    after: Subject | None
    match event:
        case ev.RequestCreated() | ev.RequestImported() | ev.BatchCreated() | ev.BatchImported():
            after = event.record
        case ev.NotifyCreated() | ev.NotifyImported():
            after = event.record
        case ev.TimelineAppended() | ev.TimelineImported():
            after = event.entry
        case ev.RequestExternalIdSet() if isinstance(before, HumanRequestRecord):
            after = msgspec.structs.replace(
                before,
                external_ids=_with_external_id(before.external_ids, event.key, event.external_id),
                external_id=event.external_id if event.key == before.channel else before.external_id,
            )
        case ev.BatchExternalIdSet() if isinstance(before, BatchRecord):
            after = msgspec.structs.replace(
                before,
                external_ids=_with_external_id(before.external_ids, event.key, event.external_id),
                external_id=event.external_id if event.key == before.channel else before.external_id,
            )
        case ev.RequestResolved() | ev.RequestTimedOut() if isinstance(before, HumanRequestRecord):
            after = msgspec.structs.replace(
                before, status="resolved", result=event.result, resolved_at=event.resolved_at
            )
        case ev.NotifyExternalIdSet() if isinstance(before, NotifyDeliveryRecord):
            after = msgspec.structs.replace(before, external_id=event.external_id)
        case _:
            return Change(event, keys, before, None)
    return Change(event, keys, before, after)
