"""Every event hitl-streams appends to history, in one module.

An event is one JSON object in the `{prefix}:events` Redis Stream (field `event`), readable with
`redis-cli XRANGE`. Each carries its `type`, the schema version `v`, the time `at` (JavaScript ISO),
its subject ids and, where known, the `actor`. The stream id of the entry is the event's position in
history.

State events change the projection (see `migrations/`). Audit events record what the server did
(delivered, reminded, resumed, ...) and only feed the per-subject audit index.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from ..records import BatchRecord, HumanRequestRecord, NewHumanRequest, NotifyDeliveryRecord, TimelineEntry
from ..results import Resolved, Reviewer, TimedOut
from ..reviewers import CredentialRecord, ReviewerRecord

__all__ = [
    "AUDIT_EVENTS",
    "REVIEWER_EVENTS",
    "STATE_EVENTS",
    "AuditRecord",
    "BatchCreated",
    "BatchDelivered",
    "BatchEscalated",
    "BatchExternalIdSet",
    "BatchImported",
    "BatchRedelivered",
    "BatchReminded",
    "BatchTimedOut",
    "ChannelFailed",
    "Event",
    "NotificationSent",
    "NotifyCreated",
    "NotifyExternalIdSet",
    "NotifyImported",
    "RequestCreated",
    "RequestDelivered",
    "RequestEscalated",
    "RequestExternalIdSet",
    "RequestImported",
    "RequestRedelivered",
    "RequestReminded",
    "RequestResolved",
    "RequestTimedOut",
    "ResumeAttempted",
    "ResumeFailed",
    "ResumeSucceeded",
    "ReviewerAdded",
    "ReviewerCredentialIssued",
    "ReviewerRevoked",
    "ReviewerSignedIn",
    "ReviewerSignedOut",
    "ScheduleEnded",
    "ScheduleFired",
    "ScheduleSet",
    "TimelineAppended",
    "TimelineImported",
    "decode_event",
    "encode_event",
    "event_to_dict",
    "resolution_event",
]

SCHEMA_VERSION = 4
"""4: a resolution keeps its result's fields on the event, without what the event says already (see
`_Resolution`). 3 (still read): a batch item's `request.created` may leave out the batch's context
(`"batchContext": true`): the `batch.created` event holds it once, not once per item. 2 (still read):
`request.created` carries the caller's `request` (a batch item's with the whole context), resolutions no
`resolvedAt`. 1 (still read): the whole `record`, and `resolvedAt` repeating `at`."""


class _Base(msgspec.Struct, tag_field="type", kw_only=True, rename="camel"):
    """Envelope fields. Optional fields are `UNSET` (omitted from JSON) rather than `None`."""

    v: int = SCHEMA_VERSION
    at: str
    actor: Reviewer | UnsetType = UNSET

    about_request: ClassVar[bool] = False
    """True when the first of `subjects()` is a request (the audit index keeps requests apart)."""

    def subjects(self) -> tuple[str, ...]:
        """Ids whose audit trail lists this event."""
        raise NotImplementedError


# --- state events: each changes the projection ----------------------------------------------------------
class RequestCreated(_Base, tag="request.created", kw_only=True):
    """A new pending request. History keeps what the caller asked for (`request`); the stored record adds
    only `status: "pending"` and `createdAt`, which is the event's `at`, so the event does not repeat them."""

    about_request = True

    request: NewHumanRequest | UnsetType = UNSET
    legacy_record: HumanRequestRecord | UnsetType = msgspec.field(default=UNSET, name="record")
    """Earlier builds stored the whole record here. Still read, for the histories they wrote; never written."""
    batch_context: bool | UnsetType = UNSET
    """`True`: the request's context is its batch's (`batch.created` holds it), left out of `request` so a
    batch of n items does not store its context n more times in history. Schema version 3."""

    def __post_init__(self) -> None:
        if isinstance(self.request, UnsetType) and isinstance(self.legacy_record, UnsetType):
            raise ValueError("a request.created event needs its `request`")  # decoding: a ValidationError
        if self.batch_context is True and (isinstance(self.request, UnsetType) or self.request.batch_id is None):
            raise ValueError("batchContext needs a batch item's `request`")

    @property
    def uses_batch_context(self) -> bool:
        """True when the record's context is its batch's (see `record_with`)."""
        return self.batch_context is True

    @property
    def record(self) -> HumanRequestRecord:
        """The record this event creates (for `uses_batch_context`, without the context: `record_with`)."""
        return self.record_with(None)

    def record_with(self, batch_context: dict[str, Any] | None) -> HumanRequestRecord:
        """The record this event creates, given its batch's context when `uses_batch_context`."""
        new = self.request
        if isinstance(new, UnsetType):
            assert not isinstance(self.legacy_record, UnsetType)  # one of the two: __post_init__
            return self.legacy_record
        return HumanRequestRecord(
            id=new.id,
            token=new.token,
            channel=new.channel,
            namespace=new.namespace,
            message=new.message,
            actions=new.actions,
            context=batch_context if self.batch_context is True else new.context,
            status="pending",
            created_at=self.at,
            batch_id=new.batch_id,
            batch_index=new.batch_index,
        )

    def subjects(self) -> tuple[str, ...]:
        new = self.legacy_record if isinstance(self.request, UnsetType) else self.request
        assert not isinstance(new, UnsetType)  # one of the two: __post_init__
        return (new.id,) if new.batch_id is None else (new.id, new.batch_id)


class RequestExternalIdSet(_Base, tag="request.external_id_set", kw_only=True):
    about_request = True

    id: str
    key: str
    """The channel ref the id belongs to; the record's own channel sets the primary `externalId` too."""
    external_id: str

    def subjects(self) -> tuple[str, ...]:
        return (self.id,)


class _Resolution(_Base, kw_only=True):
    """A decision on a request. It takes effect at the event's `at`: that is the record's `resolvedAt`.

    Schema version 4 keeps the result's own fields on the event, without what the event says already: the
    result's `type` (the event type), its `id` (the event's `id`; `resultId` only when it differs) and, for
    a resolution, its `by` (the event's `actor`), empty `feedbacks` and `edited: false`. `result` rebuilds
    the result (and refuses an event without its decision: checked there rather than on every decode, which
    replay does for each event). Earlier versions stored the whole result under `result` (still read, never
    written)."""

    legacy_resolved_at: str | UnsetType = msgspec.field(default=UNSET, name="resolvedAt")
    """Earlier builds repeated `at` here. Still read, for the histories they wrote; never written."""

    about_request = True

    id: str

    @property
    def resolved_at(self) -> str:
        return self.at if isinstance(self.legacy_resolved_at, UnsetType) else self.legacy_resolved_at

    def subjects(self) -> tuple[str, ...]:
        return (self.id,)


class RequestResolved(_Resolution, tag="request.resolved", kw_only=True):
    action_id: str | UnsetType = UNSET
    external_ref: str | UnsetType = UNSET
    feedbacks: dict[str, Any] | UnsetType = UNSET
    """Only when not empty."""
    edited: bool | UnsetType = UNSET
    """Only when true."""
    result_id: str | UnsetType = UNSET
    """Only when the result names another id than the event's."""
    legacy_result: Resolved | UnsetType = msgspec.field(default=UNSET, name="result")
    """Schema versions 1-3: the whole result. Still read; never written."""

    @classmethod
    def of(cls, request_id: str, result: Resolved, at: str) -> RequestResolved:
        """The event for `result` (schema version 4); the reviewer (`by`) is its actor."""
        return cls(
            at=at,
            actor=UNSET if result.by is None else result.by,
            id=request_id,
            action_id=result.action_id,
            external_ref=result.external_ref,
            feedbacks=result.feedbacks if result.feedbacks else UNSET,
            edited=True if result.edited else UNSET,
            result_id=UNSET if result.id == request_id else result.id,
        )

    @property
    def result(self) -> Resolved:
        if not isinstance(self.legacy_result, UnsetType):
            return self.legacy_result
        if isinstance(self.action_id, UnsetType) or isinstance(self.external_ref, UnsetType):
            raise msgspec.ValidationError("a request.resolved event needs its `actionId` and `externalRef`")
        result_id, feedbacks, actor = self.result_id, self.feedbacks, self.actor
        return Resolved(
            self.id if isinstance(result_id, UnsetType) else result_id,
            self.action_id,
            self.external_ref,
            {} if isinstance(feedbacks, UnsetType) else feedbacks,
            None if isinstance(actor, UnsetType) else actor,
            self.edited is True,
        )


class RequestTimedOut(_Resolution, tag="request.timed_out", kw_only=True):
    external_ref: str | UnsetType = UNSET
    result_id: str | UnsetType = UNSET
    """Only when the result names another id than the event's."""
    legacy_result: TimedOut | UnsetType = msgspec.field(default=UNSET, name="result")
    """Schema versions 1-3: the whole result. Still read; never written."""

    @classmethod
    def of(cls, request_id: str, result: TimedOut, at: str) -> RequestTimedOut:
        """The event for `result` (schema version 4)."""
        result_id = UNSET if result.id == request_id else result.id
        return cls(at=at, id=request_id, external_ref=result.external_ref, result_id=result_id)

    @property
    def result(self) -> TimedOut:
        if not isinstance(self.legacy_result, UnsetType):
            return self.legacy_result
        if isinstance(self.external_ref, UnsetType):
            raise msgspec.ValidationError("a request.timed_out event needs its `externalRef`")
        result_id = self.id if isinstance(self.result_id, UnsetType) else self.result_id
        return TimedOut(id=result_id, external_ref=self.external_ref)


class BatchCreated(_Base, tag="batch.created", kw_only=True):
    record: BatchRecord

    def subjects(self) -> tuple[str, ...]:
        return (self.record.id,)


class BatchExternalIdSet(_Base, tag="batch.external_id_set", kw_only=True):
    id: str
    key: str
    external_id: str

    def subjects(self) -> tuple[str, ...]:
        return (self.id,)


class TimelineAppended(_Base, tag="timeline.appended", kw_only=True):
    entry: TimelineEntry

    def subjects(self) -> tuple[str, ...]:
        return (self.entry.thread_id,)


class NotifyCreated(_Base, tag="notify.created", kw_only=True):
    record: NotifyDeliveryRecord

    def subjects(self) -> tuple[str, ...]:
        return (self.record.id, self.record.group_id)


class NotifyExternalIdSet(_Base, tag="notify.external_id_set", kw_only=True):
    id: str
    external_id: str

    def subjects(self) -> tuple[str, ...]:
        return (self.id,)


# Adoption of an existing TypeScript deployment: history starts with one of these per stored subject.
class RequestImported(_Base, tag="request.imported", kw_only=True):
    about_request = True

    record: HumanRequestRecord
    token_index: list[str] | UnsetType = UNSET
    """Tokens whose `idx:token` key points at this request, when not just `[record.token]`: adoption keeps
    the TypeScript lookup indexes exactly (a duplicate token stays with the request the index named)."""
    ext_index: list[str] | UnsetType = UNSET
    """External ids whose `idx:ext` key points at this request, when not just the record's own values:
    adoption keeps stale entries the TypeScript state never deleted (REF §4.2)."""

    def subjects(self) -> tuple[str, ...]:
        batch = self.record.batch_id
        return (self.record.id,) if batch is None else (self.record.id, batch)


class BatchImported(_Base, tag="batch.imported", kw_only=True):
    record: BatchRecord
    ext_index: list[str] | UnsetType = UNSET
    """External ids whose `idx:batch:ext` key points at this batch, when not just the record's own values."""

    def subjects(self) -> tuple[str, ...]:
        return (self.record.id,)


class TimelineImported(_Base, tag="timeline.imported", kw_only=True):
    entry: TimelineEntry

    def subjects(self) -> tuple[str, ...]:
        return (self.entry.thread_id,)


class NotifyImported(_Base, tag="notify.imported", kw_only=True):
    record: NotifyDeliveryRecord
    ext_index: list[str] | UnsetType = UNSET
    """External ids whose `idx:notify:ext` key points at this delivery, when not just its `externalId`."""

    def subjects(self) -> tuple[str, ...]:
        return (self.record.id, self.record.group_id)


# --- audit events: what the server did; they feed the audit index only ----------------------------------
class _Audit(_Base, kw_only=True):
    id: str
    """The request (or batch) the event is about."""
    batch_id: str | UnsetType = UNSET

    def subjects(self) -> tuple[str, ...]:
        return (self.id,) if isinstance(self.batch_id, UnsetType) else (self.id, self.batch_id)


class RequestDelivered(_Audit, tag="request.delivered", kw_only=True):
    about_request = True

    channel: str
    external_id: str | UnsetType = UNSET


class RequestRedelivered(_Audit, tag="request.redelivered", kw_only=True):
    about_request = True

    channel: str
    external_id: str | UnsetType = UNSET


class RequestReminded(_Audit, tag="request.reminded", kw_only=True):
    about_request = True

    channel: str
    message: str
    delivery_id: str | UnsetType = UNSET


class RequestEscalated(_Audit, tag="request.escalated", kw_only=True):
    about_request = True

    channel: str
    mode: str
    message: str | UnsetType = UNSET
    delivery_id: str | UnsetType = UNSET
    external_id: str | UnsetType = UNSET


class BatchDelivered(_Audit, tag="batch.delivered", kw_only=True):
    channel: str
    external_id: str | UnsetType = UNSET


class BatchReminded(_Audit, tag="batch.reminded", kw_only=True):
    channel: str
    message: str
    kind: str = "remind"


class BatchEscalated(_Audit, tag="batch.escalated", kw_only=True):
    channel: str
    mode: str
    message: str | UnsetType = UNSET
    delivery_id: str | UnsetType = UNSET


class BatchRedelivered(_Audit, tag="batch.redelivered", kw_only=True):
    channel: str
    external_id: str | UnsetType = UNSET


class BatchTimedOut(_Audit, tag="batch.timed_out", kw_only=True):
    item_ids: list[str] = msgspec.field(default_factory=list)


class NotificationSent(_Audit, tag="notification.sent", kw_only=True):
    """`id` is the notify delivery; `group_id` the thread it joined."""

    group_id: str
    channel: str
    external_id: str | UnsetType = UNSET

    def subjects(self) -> tuple[str, ...]:
        return (self.id, self.group_id)


class ResumeAttempted(_Audit, tag="resume.attempted", kw_only=True):
    about_request = True

    attempt: int


class ResumeSucceeded(_Audit, tag="resume.succeeded", kw_only=True):
    about_request = True

    attempt: int


class ResumeFailed(_Audit, tag="resume.failed", kw_only=True):
    about_request = True

    attempt: int
    error: str
    retry_in_ms: int | UnsetType = UNSET


# --- reviewers: grants, revocations and credentials (projected by migrations/0008_reviewers.py) ---------
class ChannelFailed(_Audit, tag="channel.failed", kw_only=True):
    """A channel could not do `operation` (deliver, update, notify) for good; `fallback` is where the
    request can still be decided (`"inbox"`: the web inbox and the inbox API)."""

    about_request = True

    channel: str
    operation: str
    error: str
    fallback: str | UnsetType = UNSET


class ReviewerAdded(_Base, tag="reviewer.added", kw_only=True):
    """A reviewer is granted `reviewer.namespaces` (the actor is who granted it)."""

    reviewer: ReviewerRecord

    def subjects(self) -> tuple[str, ...]:
        return (self.reviewer.id,)


class ReviewerRevoked(_Base, tag="reviewer.revoked", kw_only=True):
    """The reviewer (as it is after the revocation) loses every grant and credential at once."""

    reviewer: ReviewerRecord

    def subjects(self) -> tuple[str, ...]:
        return (self.reviewer.id,)


class ReviewerCredentialIssued(_Base, tag="reviewer.credential_issued", kw_only=True):
    """A sign-in link or an API token; `hash` is the SHA-256 of the token (the token is never stored).
    An API token carries `reviewer`, the record naming it the reviewer's current token (the old one retires)."""

    hash: str
    credential: CredentialRecord
    reviewer: ReviewerRecord | UnsetType = UNSET

    def subjects(self) -> tuple[str, ...]:
        return (self.credential.reviewer_id,)


class ReviewerSignedIn(_Base, tag="reviewer.signed_in", kw_only=True):
    """A sign-in link exchanged, once, for a session: the link as it is now (used) and the new session."""

    link_hash: str
    link: CredentialRecord
    session_hash: str
    session: CredentialRecord

    def subjects(self) -> tuple[str, ...]:
        return (self.session.reviewer_id,)


class ReviewerSignedOut(_Base, tag="reviewer.signed_out", kw_only=True):
    session_hash: str
    session: CredentialRecord

    def subjects(self) -> tuple[str, ...]:
        return (self.session.reviewer_id,)


REVIEWER_EVENTS = (ReviewerAdded, ReviewerRevoked, ReviewerCredentialIssued, ReviewerSignedIn, ReviewerSignedOut)


# --- schedule events: the server-side deadline and reminders of a request or batch ----------------------
class _Schedule(_Base, kw_only=True):
    """About one request or batch (`subject`). Kept in the subject's `audit:{id}` LIST (step 0006) and
    projected into the due index by step 0009; they change no record."""

    id: str
    subject: str
    """"request" or "batch"."""
    next_at: str | UnsetType = UNSET
    """When the next item is due (JavaScript ISO); absent when nothing is left."""
    next_fire: int | UnsetType = UNSET
    """What is due then: the index of a reminder in the expanded schedule, or -1 for the deadline."""

    def subjects(self) -> tuple[str, ...]:
        return (self.id,)

    def following(self) -> dict[str, Any]:
        """What is due after this event, as both states keep it: `{"fire", "at"}`, or `{"done": why}`."""
        if isinstance(self.next_at, str) and isinstance(self.next_fire, int):
            return {"fire": self.next_fire, "at": self.next_at}
        return {"done": "fired"}


class ScheduleSet(_Schedule, tag="schedule.set", kw_only=True):
    """The caller's schedule, anchored at the subject's creation: a deadline and reminders, in the JSON
    form of `hitl_streams.reminders.encode_reminders`."""

    anchor: str
    timeout_at: str | UnsetType = UNSET
    reminders: list[dict[str, Any]] = msgspec.field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        """The schedule as both states keep it (`subject`, `anchor`, `reminders`, `timeoutAt` if any)."""
        spec: dict[str, Any] = {"subject": self.subject, "anchor": self.anchor, "reminders": self.reminders}
        if isinstance(self.timeout_at, str):
            spec["timeoutAt"] = self.timeout_at
        return spec


class ScheduleFired(_Schedule, tag="schedule.fired", kw_only=True):
    """One due item ran: reminder `fire` (or -1, the deadline). `late_ms` is how long after `due_at` it
    ran; `skipped` counts earlier reminders that fell due while no server ran and were folded into this one."""

    fire: int
    due_at: str
    late_ms: int
    skipped: int = 0
    outcome: str
    """"reminded", "escalated", "timed_out", or "already_resolved" (a decision won the race)."""


class ScheduleEnded(_Schedule, tag="schedule.ended", kw_only=True):
    """Nothing more will fire: `reason` is "decided" (a decision cancelled the rest) or "gone"."""

    reason: str

    def following(self) -> dict[str, Any]:
        return {"done": self.reason}


STATE_EVENTS = (
    RequestCreated,
    RequestExternalIdSet,
    RequestResolved,
    RequestTimedOut,
    BatchCreated,
    BatchExternalIdSet,
    TimelineAppended,
    NotifyCreated,
    NotifyExternalIdSet,
    RequestImported,
    BatchImported,
    TimelineImported,
    NotifyImported,
    *REVIEWER_EVENTS,
)
AUDIT_EVENTS = (
    RequestDelivered,
    RequestRedelivered,
    RequestReminded,
    RequestEscalated,
    BatchDelivered,
    BatchReminded,
    BatchEscalated,
    BatchRedelivered,
    BatchTimedOut,
    NotificationSent,
    ResumeAttempted,
    ResumeSucceeded,
    ResumeFailed,
    ScheduleSet,
    ScheduleFired,
    ScheduleEnded,
    ChannelFailed,
)

Event = (
    RequestCreated
    | RequestExternalIdSet
    | RequestResolved
    | RequestTimedOut
    | BatchCreated
    | BatchExternalIdSet
    | TimelineAppended
    | NotifyCreated
    | NotifyExternalIdSet
    | RequestImported
    | BatchImported
    | TimelineImported
    | NotifyImported
    | RequestDelivered
    | RequestRedelivered
    | RequestReminded
    | RequestEscalated
    | BatchDelivered
    | BatchReminded
    | BatchEscalated
    | BatchRedelivered
    | BatchTimedOut
    | NotificationSent
    | ResumeAttempted
    | ResumeSucceeded
    | ResumeFailed
    | ReviewerAdded
    | ReviewerRevoked
    | ReviewerCredentialIssued
    | ReviewerSignedIn
    | ReviewerSignedOut
    | ScheduleSet
    | ScheduleFired
    | ScheduleEnded
    | ChannelFailed
)

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def resolution_event(request_id: str, result: Resolved | TimedOut, at: str) -> RequestResolved | RequestTimedOut:
    """The event recording a decision; a resolution's reviewer (`by`) is its actor."""
    if isinstance(result, Resolved):
        return RequestResolved.of(request_id, result, at)
    return RequestTimedOut.of(request_id, result, at)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    return _decoder.decode(data)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as plain JSON-ready data (for `--json` output and exports)."""
    result: dict[str, Any] = msgspec.to_builtins(event)
    return result


class AuditRecord(msgspec.Struct, frozen=True):
    """One event in a subject's history, with its position (the stream id, or a counter in memory)."""

    position: str
    event: Event
