"""`InMemoryState`: the State protocol in process memory. For tests, demos and single-process use.

It hands out copies, never the objects it holds, so a caller cannot change stored data by accident.
Each `InMemoryState()` is its own store (the TypeScript default is a process-wide singleton; a
per-instance store keeps tests and apps from sharing state without saying so).
"""

from __future__ import annotations

import builtins
import time
import uuid
from typing import Any, TypeVar

import msgspec

from .._time import iso_to_ms, now_iso
from ..errors import (
    AlreadyResolvedError,
    DuplicateRequestError,
    DuplicateTokenError,
    UnknownBatchError,
    UnknownNotifyDeliveryError,
    UnknownRequestError,
)
from ..namespaces import validate_filter, validate_namespace
from ..pagination import (
    build_page,
    clamp_limit,
    decode_cursor,
    is_after_cursor,
    page_after,
    position_cursor,
    position_order,
)
from ..records import (
    BatchRecord,
    HumanRequestRecord,
    InboxPage,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    NotifyDeliveryRecord,
    RequestStatus,
    TimelineEntry,
)
from ..results import HumanResult
from . import events as ev
from .keys import Keys
from .memory_reviewers import MemoryReviewers
from .reducer import apply

__all__ = ["InMemoryState"]

_T = TypeVar("_T", bound=msgspec.Struct)
_J = TypeVar("_J", dict[str, Any], builtins.list[dict[str, Any]])
_S = TypeVar("_S", HumanRequestRecord, BatchRecord, NotifyDeliveryRecord)
_KEYS = Keys("memory")
"""Key names `reducer.apply` carries along; an in-memory state writes no keys."""


def _copy_json(value: _J) -> _J:
    copied: _J = msgspec.json.decode(msgspec.json.encode(value))
    return copied


def _copy(value: _T) -> _T:
    """A deep copy that also proves the value survives JSON, as it must in every other backend."""
    return msgspec.json.decode(msgspec.json.encode(value), type=type(value))


class InMemoryState:
    """The State protocol backed by dictionaries."""

    kind = "memory"

    def __init__(self) -> None:
        self._requests: dict[str, HumanRequestRecord] = {}
        self._tokens: dict[str, str] = {}
        self._external_ids: dict[str, str] = {}
        self._batches: dict[str, BatchRecord] = {}
        self._timelines: dict[str, builtins.list[TimelineEntry]] = {}
        self._timeline_ids: set[str] = set()
        self._leases: dict[str, tuple[str, float]] = {}
        self._notify: dict[str, NotifyDeliveryRecord] = {}
        # History, as StreamState keeps it: every change is one event; `audit` reads a subject's events.
        self._events: builtins.list[ev.AuditRecord] = []
        self._by_subject: dict[str, builtins.list[int]] = {}
        self.reviewers = MemoryReviewers(self._append)
        """Reviewers and their credentials (a `ReviewerDirectory`), recorded in this state's history."""
        # Server-side schedules, projected from their events as step 0009 does in Redis.
        self._schedules: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._due: dict[str, int] = {}

    def _append(self, event: ev.Event) -> None:
        position = len(self._events)
        self._events.append(ev.AuditRecord(position=f"{position + 1}-0", event=_copy(event)))
        for subject in dict.fromkeys(event.subjects()):
            self._by_subject.setdefault(subject, []).append(position)

    def _apply(self, event: ev.Event, before: _S) -> _S:
        """Append a mutation's event and return the record after it, reduced by `reducer.apply`, the
        code StreamState's projection uses too, so the two states cannot disagree on record semantics."""
        after = apply(event, before, _KEYS).after
        if not isinstance(after, type(before)):
            raise AssertionError(f"{type(event).__name__} did not reduce to a {type(before).__name__}")
        self._append(event)
        return _copy(after)

    async def record(self, event: ev.Event) -> None:
        """Append an audit event (delivered, reminded, resumed, ...) to history."""
        self._append(event)
        if isinstance(event, ev.ScheduleSet | ev.ScheduleFired | ev.ScheduleEnded):
            self._project_schedule(event)

    def _project_schedule(self, event: ev.ScheduleSet | ev.ScheduleFired | ev.ScheduleEnded) -> None:
        spec = self._schedules.get(event.id, ({}, {}))[0]
        if isinstance(event, ev.ScheduleSet):
            spec = _copy_json(event.spec())
        following = event.following()
        self._schedules[event.id] = (spec, following)
        if "at" in following:
            self._due[event.id] = iso_to_ms(following["at"])
        else:
            self._due.pop(event.id, None)

    # --- server-side schedules ------------------------------------------------------------------------
    async def due_schedules(self, until_ms: int, limit: int = 100) -> builtins.list[str]:
        """Ids of the requests and batches whose next scheduled item is due at or before `until_ms`."""
        due = sorted((at, i) for i, at in self._due.items() if at <= until_ms)
        return [i for _, i in due[:limit]]

    async def next_due_ms(self) -> int | None:
        return min(self._due.values(), default=None)

    async def due_count(self) -> int:
        return len(self._due)

    async def get_schedule(self, subject_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        found = self._schedules.get(subject_id)
        return None if found is None else (_copy_json(found[0]), _copy_json(found[1]))

    async def audit(
        self, subject_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[ev.AuditRecord]:
        """The events about one request, batch, notify delivery or thread, oldest first; with `limit`, a
        page of at most that many after `cursor` (the last record's `position`)."""
        records = [self._events[i] for i in self._by_subject.get(subject_id, [])]
        if cursor is not None:
            after = position_cursor(cursor)
            records = [r for r in records if position_order(r.position) > after]
        return records if limit is None else records[: clamp_limit(limit)]

    async def history(self) -> builtins.list[ev.AuditRecord]:
        """Every event, oldest first."""
        return builtins.list(self._events)

    async def ensure_schema(self) -> None:
        return None

    # --- leases ---------------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, ttl_ms: int) -> str | None:
        """Claim `name` for `ttl_ms` unless someone holds it; the token to release it with, or `None`."""
        now = time.monotonic()
        held = self._leases.get(name)
        if held is not None and held[1] > now:
            return None
        token = uuid.uuid4().hex
        self._leases[name] = (token, now + ttl_ms / 1000)
        return token

    async def renew_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend a lease we hold to `ttl_ms` from now; False if it is no longer ours."""
        held = self._leases.get(name)
        if held is None or held[0] != token or held[1] <= time.monotonic():
            return False
        self._leases[name] = (token, time.monotonic() + ttl_ms / 1000)
        return True

    async def release_lease(self, name: str, token: str) -> None:
        """Give a lease back, if it is still ours."""
        if self._leases.get(name, ("", 0.0))[0] == token:
            del self._leases[name]

    # --- requests -------------------------------------------------------------------------------------
    async def create(self, record: NewHumanRequest) -> None:
        validate_namespace(record.namespace)
        if record.token in self._tokens:
            raise DuplicateTokenError(self._tokens[record.token])
        if record.id in self._requests:
            raise DuplicateRequestError("Human request", record.id)
        event = ev.RequestCreated(at=now_iso(), request=_copy(record))
        self._requests[record.id] = event.record
        self._tokens[record.token] = record.id
        self._append(event)

    async def get(self, request_id: str) -> HumanRequestRecord | None:
        record = self._requests.get(request_id)
        return None if record is None else _copy(record)

    async def find_by_external_id(self, external_id: str) -> HumanRequestRecord | None:
        for record in self._requests.values():
            if record.external_id == external_id:
                return _copy(record)
        request_id = self._external_ids.get(external_id)
        return None if request_id is None else await self.get(request_id)

    async def find_by_token(self, token: str) -> HumanRequestRecord | None:
        request_id = self._tokens.get(token)
        return None if request_id is None else await self.get(request_id)

    async def set_external_id(self, request_id: str, external_id: str, plugin_id: str | None = None) -> None:
        record = self._requests.get(request_id)
        if record is None:
            raise UnknownRequestError(request_id)
        key = plugin_id if plugin_id is not None else record.channel
        self._requests[request_id] = self._apply(
            ev.RequestExternalIdSet(at=now_iso(), id=request_id, key=key, external_id=external_id), record
        )
        self._external_ids[external_id] = request_id

    async def resolve(self, request_id: str, result: HumanResult) -> None:
        record = self._requests.get(request_id)
        if record is None:
            raise UnknownRequestError(request_id)
        if record.status != "pending":
            raise AlreadyResolvedError(request_id)
        self._requests[request_id] = self._apply(ev.resolution_event(request_id, result, now_iso()), record)

    async def list(
        self,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage:
        validate_filter(status, namespace)
        size = clamp_limit(limit)
        after = decode_cursor(cursor) if cursor else None
        rows = sorted(
            (
                r
                for r in self._requests.values()
                if (status is None or r.status == status)
                and (not namespace or r.namespace == namespace)
                and (after is None or is_after_cursor(r.created_at, r.id, after))
            ),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        return build_page([_copy(r) for r in rows[: size + 1]], size)

    async def count(self, *, status: RequestStatus | None = None, namespace: str | None = None) -> int:
        validate_filter(status, namespace)
        return sum(
            1
            for r in self._requests.values()
            if (status is None or r.status == status) and (not namespace or r.namespace == namespace)
        )

    # --- batches --------------------------------------------------------------------------------------
    async def create_batch(self, record: NewBatch) -> None:
        if record.id in self._batches:
            raise DuplicateRequestError("Batch", record.id)
        batch = BatchRecord(
            id=record.id,
            channel=record.channel,
            message=record.message,
            actions=record.actions,
            context=record.context,
            created_at=now_iso(),
        )
        self._batches[record.id] = _copy(batch)
        self._append(ev.BatchCreated(at=batch.created_at, record=batch))

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        batch = self._batches.get(batch_id)
        return None if batch is None else _copy(batch)

    async def set_batch_external_id(self, batch_id: str, external_id: str, plugin_id: str | None = None) -> None:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise UnknownBatchError(batch_id)
        key = plugin_id if plugin_id is not None else batch.channel
        self._batches[batch_id] = self._apply(
            ev.BatchExternalIdSet(at=now_iso(), id=batch_id, key=key, external_id=external_id), batch
        )

    async def list_by_batch(self, batch_id: str) -> builtins.list[HumanRequestRecord]:
        items = [r for r in self._requests.values() if r.batch_id == batch_id]
        items.sort(key=lambda r: r.batch_index or 0)
        return [_copy(r) for r in items]

    # --- timelines and notifications ------------------------------------------------------------------
    async def append_timeline(self, entry: TimelineEntry) -> None:
        if entry.id in self._timeline_ids:
            raise DuplicateRequestError("Timeline entry", entry.id)
        self._timeline_ids.add(entry.id)
        self._timelines.setdefault(entry.thread_id, []).append(_copy(entry))
        self._append(ev.TimelineAppended(at=now_iso(), entry=entry))

    async def timeline(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[TimelineEntry]:
        entries = sorted(self._timelines.get(thread_id, []), key=lambda e: e.created_at)
        page = page_after(entries, lambda e: e.id, limit=limit, cursor=cursor, what="timeline")
        return [_copy(e) for e in page]

    async def create_notify_delivery(self, record: NewNotifyDelivery) -> None:
        if record.id in self._notify:
            raise DuplicateRequestError("Notify delivery", record.id)
        delivery = NotifyDeliveryRecord(
            id=record.id,
            channel=record.channel,
            message=record.message,
            group_id=record.group_id,
            created_at=now_iso(),
        )
        self._notify[record.id] = _copy(delivery)
        self._append(ev.NotifyCreated(at=delivery.created_at, record=delivery))

    async def get_notify_delivery(self, delivery_id: str) -> NotifyDeliveryRecord | None:
        delivery = self._notify.get(delivery_id)
        return None if delivery is None else _copy(delivery)

    async def set_notify_delivery_external_id(self, delivery_id: str, external_id: str) -> None:
        delivery = self._notify.get(delivery_id)
        if delivery is None:
            raise UnknownNotifyDeliveryError(delivery_id)
        self._notify[delivery_id] = self._apply(
            ev.NotifyExternalIdSet(at=now_iso(), id=delivery_id, external_id=external_id), delivery
        )
