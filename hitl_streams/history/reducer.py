"""How one event changes the subject it is about: `(event, record before) -> record after`.

This is the record semantics of the State protocol written once. Live writes and replays both go
through it, then through the projection steps in `migrations/`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ..records import BatchRecord, HumanRequestRecord, NotifyDeliveryRecord
from . import events as ev
from .codec import Subject, decode_batch, decode_notify, decode_request
from .keys import Keys

__all__ = [
    "BATCH_EVENTS",
    "NOTIFY_EVENTS",
    "RECORD_EVENTS",
    "REQUEST_EVENTS",
    "TIMELINE_EVENTS",
    "Change",
    "apply",
    "key_of",
    "subject_ref",
]

# The events `apply` makes a record from, by the record's kind: for every other event `after` is None.
# Projection steps declare their events with these (`Step.events`); keep them in step with `apply`.
REQUEST_EVENTS: tuple[type, ...] = (
    ev.RequestCreated,
    ev.RequestImported,
    ev.RequestExternalIdSet,
    ev.RequestResolved,
    ev.RequestTimedOut,
)
BATCH_EVENTS: tuple[type, ...] = (ev.BatchCreated, ev.BatchImported, ev.BatchExternalIdSet)
NOTIFY_EVENTS: tuple[type, ...] = (ev.NotifyCreated, ev.NotifyImported, ev.NotifyExternalIdSet)
TIMELINE_EVENTS: tuple[type, ...] = (ev.TimelineAppended, ev.TimelineImported)
RECORD_EVENTS: tuple[type, ...] = REQUEST_EVENTS + BATCH_EVENTS + NOTIFY_EVENTS + TIMELINE_EVENTS


class Change(msgspec.Struct, frozen=True):
    """What one event did: the event, the key names to project under, the subject before and after.

    `before` and `after` are both `None` for audit events, which change no record. A frozen msgspec Struct,
    not a frozen dataclass: one is made per write and per replayed event, and the dataclass's `__init__`
    cost nine times as much (7.0k instructions against 0.8k).
    """

    event: ev.Event
    keys: Keys
    before: Subject | None
    after: Subject | None


Decoder = Callable[[bytes | str], Subject]


def subject_ref(event: ev.Event, keys: Keys) -> tuple[str, Decoder] | None:
    """The key (and its decoder) whose current value reducing `event` needs; `None` if it needs none."""
    match event:
        case ev.RequestCreated() if event.uses_batch_context:
            assert not isinstance(event.request, msgspec.UnsetType) and event.request.batch_id is not None
            return keys.batch(event.request.batch_id), decode_batch  # the batch holds the context
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
    """Reduce one event. A mutation whose subject is missing (a damaged history) changes nothing.

    `before` is the value of `subject_ref`'s key: the subject itself, or, for a batch item created with
    its batch's context, that batch."""
    after: Subject | None
    match event:
        case ev.RequestCreated():
            # A new request: nothing before it. `before`, if any, is the item's batch, whose context the
            # record takes when the event says so (`subject_ref`).
            shared = before.context if event.uses_batch_context and isinstance(before, BatchRecord) else None
            return Change(event, keys, None, event.record_with(shared))
        case ev.RequestImported() | ev.BatchCreated() | ev.BatchImported():
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
