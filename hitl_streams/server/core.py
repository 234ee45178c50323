"""The server's services (REF §5): create, batch, notify, timeout, remind/escalate, resolve.

Differences from the reference (SPEC §6):
- Create is race-free: concurrent creates with one token make one record and one delivery (a per-token
  lock in process, `DuplicateTokenError` across processes). A retried create or batch finishes any
  interrupted delivery, and re-applies its thread anchor.
- A batch's id is derived from its first token, so a retry after a crash at any point finds the batch
  and completes it: missing items are created and undelivered items are delivered.
- Resolving a resolved request with the same decision returns the stored result; another decision
  raises `AlreadyResolvedError`. A batch resolve validates every decision before writing anything and
  finishes every item even when it loses a race on one of them.
- `notify` and `after` default to the anchor's own channel, and a thread ref is only ever handed to the
  adapter that made it (REF §10.6 item 32).
- Every caller mistake is a typed `HitlError`; adapter failures are `DeliveryError` (HTTP 502) and
  channel updates after a decision never fail the decision (they are logged).
- Each step an auditor cares about is recorded as an audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET

from .._cancel import reraise_lost_cancel
from .._random import random_hex, random_uuid4
from .._time import now_iso
from ..actions import Action, Field, action_by_id
from ..errors import (
    AlreadyResolvedError,
    DuplicateRequestError,
    DuplicateTokenError,
    HitlError,
    UnknownBatchError,
    UnknownChannelError,
    UnknownRequestError,
    ValidationError,
)
from ..history import events as ev
from ..records import BatchRecord, HumanRequestRecord, NewBatch, NewHumanRequest, NewNotifyDelivery, TimelineEntry
from ..results import HumanResult, Reviewer, TimedOut
from ..state import State
from .audit import Auditable
from .channels import (
    Adapter,
    BatchHumanRequest,
    BatchItem,
    ChannelRoute,
    HumanRequest,
    Notification,
    resolve_channel,
    resolve_channel_key,
)
from .deadlines import ScheduleStore, schedule_event
from .decisions import build_result, same_decision
from .resumption import ResumeJob
from .schedules import ServerSchedule
from .shortcuts import DeliveryRecorder, ResolvesFrom
from .wire import Anchor, BatchAnchor, CreateBatchBody, CreateRequestBody, NotifyBody, RemindBody

__all__ = [
    "DEFAULT_ESCALATE_MESSAGE",
    "DEFAULT_REMIND_MESSAGE",
    "BatchDecision",
    "Core",
    "DeliveryError",
    "TimelineContext",
]

log = logging.getLogger("hitl_streams.server")

DEFAULT_REMIND_MESSAGE = "Reminder: approval still pending"
DEFAULT_ESCALATE_MESSAGE = "Escalation: approval still pending"

# Batch ids are derived from the first item's resume token (UUIDv5), so a retried create finds the batch.
_BATCH_NAMESPACE = uuid.UUID("4f1b6a52-3c0e-5d8a-9a57-2f1c0b8e6d41")

_T = TypeVar("_T")


class DeliveryError(HitlError):
    """A channel adapter failed to deliver. HTTP 502; the request stays pending and a retry finishes it."""


class BatchDecision(msgspec.Struct, kw_only=True, frozen=True):
    """One reviewer decision in `hitl.inbox.resolve_batch`."""

    request_id: str
    action_id: str
    feedbacks: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TimelineContext:
    """Where an anchor id puts a message: its timeline group, and the delivery to thread under."""

    group_id: str
    delivery_ref: str | None = None
    channel_ref: str | None = None
    """The channel ref `delivery_ref` belongs to."""


_DELIVERY_LEASE_MS = 30_000
"""How long a replica's claim to deliver one request lasts (a send slower than this may be repeated)."""
_LEASE_POLL_SECONDS = 0.02


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, key: str) -> _Held:
        return _Held(self._locks, key)


class _Held:
    """`async with locks.hold(key):` as a plain class: every create takes one, and a generator-based
    context manager cost more than the lock itself."""

    __slots__ = ("_key", "_lock", "_locks")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], key: str) -> None:
        self._locks, self._key = locks, key

    def _leave(self) -> None:
        lock, users = self._locks[self._key]
        if users == 1:
            del self._locks[self._key]
        else:
            self._locks[self._key] = (lock, users - 1)

    async def __aenter__(self) -> None:
        lock, users = self._locks.get(self._key) or (asyncio.Lock(), 0)
        self._locks[self._key] = (lock, users + 1)
        self._lock = lock
        try:
            await lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()
        self._leave()


def _defaults_action(actions: Sequence[Action], explicit: str | None, needed: bool) -> Action | None:
    """The action whose field defaults batch items override (REF §5.3, without its needless error)."""
    if explicit is not None:
        action = action_by_id(actions, explicit)
        if action is None:
            raise ValidationError(f'defaultsActionId "{explicit}" not found in actions.')
        return action
    action = action_by_id(actions, "approve")
    if action is None and needed:
        raise ValidationError("waitForHuman batch items require an approve action or defaultsActionId.")
    return action


def _merge_item_actions(
    actions: list[Action], target: Action | None, defaults: Mapping[str, Any] | None, index: int
) -> list[Action]:
    if target is None or not defaults or not target.fields:
        return actions
    merged: dict[str, Field] = {}
    for key, spec in target.fields.items():
        if key not in defaults:
            merged[key] = spec
            continue
        raw = {**msgspec.to_builtins(spec), "default": defaults[key]}
        try:
            merged[key] = msgspec.convert(raw, Field)
        except msgspec.ValidationError as exc:
            raise ValidationError(f'items[{index}].defaults["{key}"] does not fit the field: {exc}') from None
    return [msgspec.structs.replace(a, fields=merged) if a.id == target.id else a for a in actions]


def _item_defaults(actions: Sequence[Action], target: Action | None) -> dict[str, Any]:
    action = None if target is None else action_by_id(actions, target.id)
    if action is None:
        return {}
    return {key: spec.default for key, spec in action.fields.items() if spec.default is not None}


class Core:
    """The services behind the HTTP API and the inbox. `on_decision` receives every new resolution."""

    def __init__(
        self,
        state: State,
        adapters: tuple[Adapter, ...],
        on_decision: Callable[[ResumeJob], None],
        *,
        resume_timeouts: bool = True,
        on_schedule: Callable[[], None] = lambda: None,
    ) -> None:
        self.state = state
        self._on_schedule = on_schedule
        # A runtime Protocol check walks the protocol's members: made once here, not for every event.
        self._history: Auditable | None = state if isinstance(state, Auditable) else None
        self._deliveries: DeliveryRecorder | None = state if isinstance(state, DeliveryRecorder) else None
        self._resolves_from: ResolvesFrom | None = state if isinstance(state, ResolvesFrom) else None
        self.adapters = adapters
        self._on_decision = on_decision
        self._resume_timeouts = resume_timeouts
        self._locks = _KeyedLocks()

    # --- helpers ------------------------------------------------------------------------------------------
    async def _record(self, event: ev.Event) -> None:
        if self._history is not None:
            await self._history.record(event)

    async def _call(self, adapter: Adapter, what: str, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("hitl: adapter %r failed to %s", adapter.id, what, exc_info=True)
            raise DeliveryError(f'Channel "{adapter.id}" failed to {what}') from exc

    def _default_route(self, anchor: TimelineContext | None, channel: str | None) -> ChannelRoute:
        """An explicit channel; else the anchor's own channel; else the first adapter."""
        if channel is not None:
            return resolve_channel(self.adapters, channel)
        if anchor is not None and anchor.channel_ref is not None:
            try:
                return resolve_channel_key(self.adapters, anchor.channel_ref)
            except UnknownChannelError:
                pass
        return resolve_channel(self.adapters, None)

    def _thread(self, anchor: TimelineContext | None, route: ChannelRoute) -> str | None:
        """The anchor's delivery ref, only for the adapter that made it and the same destination."""
        if anchor is None or anchor.delivery_ref is None or anchor.channel_ref is None:
            return None
        try:
            origin = resolve_channel_key(self.adapters, anchor.channel_ref)
        except UnknownChannelError:
            return None
        if origin.adapter.id != route.adapter.id:
            return None
        if route.destination is not None and route.channel_ref != anchor.channel_ref:
            return None
        return anchor.delivery_ref

    async def resolve_anchor(self, anchor_id: str) -> TimelineContext:
        """The timeline group and delivery of an anchor id (REF §5.4); an unknown id is its own group."""
        record = await self.state.get(anchor_id)
        if record is not None and record.batch_id is not None:
            return await self._batch_anchor(record.batch_id, record)
        if record is not None:
            return TimelineContext(anchor_id, record.external_id, record.channel)
        if await self.state.get_batch(anchor_id) is not None:
            return await self._batch_anchor(anchor_id, None)
        delivery = await self.state.get_notify_delivery(anchor_id)
        if delivery is not None:
            return TimelineContext(delivery.group_id, delivery.external_id, delivery.channel)
        return TimelineContext(anchor_id)

    async def _batch_anchor(self, batch_id: str, record: HumanRequestRecord | None) -> TimelineContext:
        batch = await self.state.get_batch(batch_id)
        channel = batch.channel if batch is not None else record.channel if record is not None else None
        ref = batch.external_id if batch is not None else None
        if ref is None and record is not None:
            ref = record.external_id
        if ref is None:
            items = await self.state.list_by_batch(batch_id)
            ref = items[0].external_id if items else None
        return TimelineContext(batch_id, ref, channel)

    async def _deliver(
        self,
        request_id: str,
        route: ChannelRoute,
        message: str,
        actions: list[Action],
        context: dict[str, Any] | None,
        *,
        thread: str | None = None,
        batch_id: str | None = None,
        again: bool = False,
        lease: tuple[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Send one request, store its external id under the route's channel ref, audit it. Returns the
        external id, and whether the delivery lease `lease` (name, token) was given back with the write."""
        request = HumanRequest(
            id=request_id,
            channel=route.adapter.id,
            destination=thread if thread is not None else route.destination,
            message=message,
            actions=actions,
            context=context,
        )
        external_id = await self._call(route.adapter, "deliver", route.adapter.send(request))
        if not isinstance(external_id, str):
            raise DeliveryError(f'Channel "{route.adapter.id}" returned no external id')
        event = (ev.RequestRedelivered if again else ev.RequestDelivered)(
            at=now_iso(),
            id=request_id,
            batch_id=UNSET if batch_id is None else batch_id,
            channel=route.channel_ref,
            external_id=external_id,
        )
        if self._deliveries is not None:  # both events in one write, the lease given back in it
            await self._deliveries.record_delivery(request_id, external_id, route.channel_ref, event, lease)
            return external_id, lease is not None
        await self.state.set_external_id(request_id, external_id, route.channel_ref)
        await self._record(event)
        return external_id, False

    async def _deliver_once(
        self,
        request_id: str,
        route: ChannelRoute,
        message: str,
        actions: list[Action],
        context: dict[str, Any] | None,
        *,
        thread: str | None = None,
    ) -> str:
        """`_deliver`, unless another replica is delivering this request right now: then wait for its
        external id. The per-token lock covers one process; the state's lease covers replicas. If the
        holder dies, its lease lapses and the next caller delivers."""
        name = f"deliver:{request_id}"
        while (lease := await self._acquire_lease(name)) is None:
            await asyncio.sleep(_LEASE_POLL_SECONDS)
            current = await self.state.get(request_id)
            if current is not None and current.external_id is not None:
                return current.external_id
        return await self._deliver_leased(name, lease, request_id, route, message, actions, context, thread=thread)

    async def _deliver_leased(
        self,
        name: str,
        lease: str,
        request_id: str,
        route: ChannelRoute,
        message: str,
        actions: list[Action],
        context: dict[str, Any] | None,
        *,
        thread: str | None = None,
        fresh: bool = False,
    ) -> str:
        """`_deliver` under the delivery lease `name` we hold, then release it. `fresh`: the lease was
        taken before the request existed, so nobody else can have delivered it (no read first); a state
        without leases ("") has only the per-token lock, and is read first as before."""
        # Most sends end long before the lease needs renewing: a timer, not a task, until one does not.
        renewing: asyncio.Task[None] | None = None

        def renew() -> None:
            nonlocal renewing
            renewing = asyncio.create_task(self._renew_lease(name, lease))

        timer = asyncio.get_running_loop().call_later(_DELIVERY_LEASE_MS / 3000, renew) if lease else None
        released = False
        try:
            if not fresh:
                current = await self.state.get(request_id)
                if current is not None and current.external_id is not None:
                    return current.external_id  # the holder finished just before we took the lease
            held = (name, lease) if lease else None
            external_id, released = await self._deliver(
                request_id, route, message, actions, context, thread=thread, lease=held
            )
            return external_id
        finally:
            if timer is not None:
                timer.cancel()
            if renewing is not None:
                renewing.cancel()
                await asyncio.wait([renewing])
            if not released:
                await self._release_lease(name, lease)

    async def _acquire_lease(self, name: str) -> str | None:
        acquire = getattr(self.state, "acquire_lease", None)
        if acquire is None:  # a State without leases: the per-token lock is all there is
            return ""
        token: str | None = await acquire(name, _DELIVERY_LEASE_MS)
        return token

    async def _renew_lease(self, name: str, token: str) -> None:
        """Keep the delivery lease while a slow channel sends: a retry elsewhere waits, not delivers again."""
        renew = getattr(self.state, "renew_lease", None)
        if renew is None:
            return
        while True:  # started a third of the lease into the send: renew now, then every third
            try:
                if not await renew(name, token, _DELIVERY_LEASE_MS):
                    return  # lost (it lapsed): nothing left to keep
            except Exception:
                log.warning("hitl: could not renew the delivery lease %s", name, exc_info=True)
            reraise_lost_cancel()
            await asyncio.sleep(_DELIVERY_LEASE_MS / 3000)

    async def _release_quietly(self, name: str, token: str) -> None:
        """Give a lease back on the way out of a failure: the failure is the news (a lease that cannot be
        released lapses by itself)."""
        try:
            await self._release_lease(name, token)
        except Exception:
            log.warning("hitl: could not release the delivery lease %s", name, exc_info=True)

    async def _release_lease(self, name: str, token: str) -> None:
        release = getattr(self.state, "release_lease", None)
        if release is not None and token:
            await release(name, token)

    async def _deliver_batch(self, route: ChannelRoute, request: BatchHumanRequest, *, again: bool = False) -> str:
        """Send a whole batch as one message, store its external id, audit it."""
        external_id = await self._call(route.adapter, "deliver", route.adapter.send_batch(request))
        if not isinstance(external_id, str):
            raise DeliveryError(f'Channel "{route.adapter.id}" returned no external id')
        await self.state.set_batch_external_id(request.batch_id, external_id, route.channel_ref)
        event = ev.BatchRedelivered if again else ev.BatchDelivered
        await self._record(event(at=now_iso(), id=request.batch_id, channel=route.channel_ref, external_id=external_id))
        return external_id

    def _decided(self, record: HumanRequestRecord, result: HumanResult) -> None:
        if isinstance(result, TimedOut) and not self._resume_timeouts:
            return
        self._on_decision(ResumeJob(record.id, result, batch_id=record.batch_id, token=record.token))

    # --- create ---------------------------------------------------------------------------------------
    async def _set_schedule(self, subject_id: str, subject: str, schedule: ServerSchedule) -> None:
        """Record a subject's server-side schedule, once (a retried create finds it set)."""
        store = self.state
        if not isinstance(store, ScheduleStore):
            raise ValidationError(f"schedule: this server's state ({type(store).__name__}) keeps no schedules")
        if await store.get_schedule(subject_id) is not None:
            return
        if subject == "batch":
            batch = await self.state.get_batch(subject_id)
            anchor = batch.created_at if batch is not None else now_iso()
        else:
            record = await self.state.get(subject_id)
            anchor = record.created_at if record is not None else now_iso()
        await store.record(schedule_event(subject_id, subject, anchor, schedule))
        self._on_schedule()

    async def create_request(self, body: CreateRequestBody) -> Anchor:
        explicit = resolve_channel(self.adapters, body.channel) if body.channel is not None else None
        async with self._locks.hold(body.token):
            # No lookup of the token first: `create` refuses a taken token (DuplicateTokenError), and a
            # retry is then answered from the stored request below. New tokens are the common case.
            anchor = await self.resolve_anchor(body.after) if body.after is not None else None
            route = explicit or self._default_route(anchor, None)
            record = NewHumanRequest(
                id=random_uuid4(),
                token=body.token,
                channel=route.channel_ref,
                namespace=body.namespace,
                message=body.message,
                actions=body.actions,
                context=body.context,
            )
            # The delivery lease is taken before (or, by a `DeliveryRecorder`, with) the record: nobody
            # else can know this fresh id yet, so it is ours, and no other replica can deliver first (a
            # retry elsewhere, finding the record, waits on it). That spares the read `_deliver_once`
            # makes after taking a lease.
            name = f"deliver:{record.id}"
            deliveries = self._deliveries
            lease: str | None = None
            try:
                if deliveries is not None:
                    lease = random_hex(12)
                    await deliveries.create_leased(record, name, lease, _DELIVERY_LEASE_MS)
                else:
                    lease = await self._acquire_lease(name)
                    await self.state.create(record)
            except BaseException as exc:
                # A refused create (a taken token) wrote nothing, a `DeliveryRecorder`'s lease neither.
                if lease and not (deliveries is not None and isinstance(exc, DuplicateTokenError)):
                    await self._release_quietly(name, lease)
                if not isinstance(exc, DuplicateTokenError):
                    raise
                # A retry, or another process created it a moment ago: answer like a retry, which waits
                # for that delivery through the delivery lease (or delivers, if its process died).
                existing = await self.state.find_by_token(body.token)
                if existing is None:
                    raise
                return await self._create_again(existing, body)
            if body.schedule is not None:
                try:
                    await self._set_schedule(record.id, "request", body.schedule)
                except BaseException:
                    if lease:
                        await self._release_quietly(name, lease)  # a retry delivers
                    raise
            thread = self._thread(anchor, route)
            if not lease:  # None cannot happen with a fresh id; "" is a state without leases: read first
                ref = await self._deliver_once(
                    record.id, route, body.message, body.actions, body.context, thread=thread
                )
                return Anchor(record.id, ref)
            ref = await self._deliver_leased(
                name, lease, record.id, route, body.message, body.actions, body.context, thread=thread, fresh=True
            )
            return Anchor(record.id, ref)

    async def _create_again(self, existing: HumanRequestRecord, body: CreateRequestBody) -> Anchor:
        """A retried create: the same request (or a conflict); finish its delivery if it was interrupted."""
        _check_same_request(existing, body)
        if body.schedule is not None:  # an earlier attempt may have stopped before setting it
            await self._set_schedule(existing.id, "request", body.schedule)
        if existing.batch_id is not None:
            batch = await self.state.get_batch(existing.batch_id)
            return Anchor(existing.id, existing.external_id or (batch.external_id if batch else None) or "")
        if existing.external_id is not None:
            return Anchor(existing.id, existing.external_id)
        # An earlier attempt stopped between recording and delivering: deliver now, in its thread.
        anchor = await self.resolve_anchor(body.after) if body.after is not None else None
        route = resolve_channel_key(self.adapters, existing.channel)
        ref = await self._deliver_once(
            existing.id, route, existing.message, existing.actions, existing.context, thread=self._thread(anchor, route)
        )
        return Anchor(existing.id, ref)

    async def create_batch(self, body: CreateBatchBody) -> BatchAnchor:
        explicit = resolve_channel(self.adapters, body.channel) if body.channel is not None else None
        target = _defaults_action(body.actions, body.defaults_action_id, any(i.defaults for i in body.items))
        item_actions = [_merge_item_actions(body.actions, target, i.defaults, n) for n, i in enumerate(body.items)]
        first_token = body.items[0].token
        async with self._locks.hold(first_token):
            anchor = await self.resolve_anchor(body.after) if body.after is not None else None
            first = await self.state.find_by_token(first_token)
            if first is not None and first.batch_id is None:
                raise DuplicateTokenError(first.id)
            batch_id = first.batch_id if first is not None else str(uuid.uuid5(_BATCH_NAMESPACE, first_token))
            assert batch_id is not None
            batch = await self._ensure_batch(batch_id, body, explicit or self._default_route(anchor, None))
            route = resolve_channel_key(self.adapters, batch.channel)
            items = await self._ensure_items(batch, body, item_actions)
            if body.schedule is not None:
                await self._set_schedule(batch.id, "batch", body.schedule)
            request = BatchHumanRequest(
                batch_id=batch.id,
                channel=route.adapter.id,
                destination=self._thread(anchor, route) or route.destination,
                message=batch.message,
                actions=batch.actions or body.actions,
                items=[
                    BatchItem(id=r.id, message=r.message, defaults=_item_defaults(r.actions, target)) for r in items
                ],
                context=batch.context,
            )
            if route.adapter.can_send_batch(request):
                if batch.external_id is None:
                    ref = await self._deliver_batch(route, request)
                    batch = msgspec.structs.replace(batch, external_id=ref)
            else:
                thread = self._thread(anchor, route)
                for n, item in enumerate(items):
                    if item.external_id is None:
                        ref, _ = await self._deliver(
                            item.id, route, item.message, item.actions, item.context, thread=thread, batch_id=batch.id
                        )
                        items[n] = msgspec.structs.replace(item, external_id=ref)
            external_ref = batch.external_id or items[0].external_id or ""
            return BatchAnchor(batch.id, [item.id for item in items], external_ref)

    async def _ensure_batch(self, batch_id: str, body: CreateBatchBody, route: ChannelRoute) -> BatchRecord:
        batch = await self.state.get_batch(batch_id)
        if batch is None:
            new = NewBatch(
                id=batch_id, channel=route.channel_ref, message=body.message, actions=body.actions, context=body.context
            )
            with contextlib.suppress(DuplicateRequestError):  # created concurrently by another process
                await self.state.create_batch(new)
            batch = await self.state.get_batch(batch_id)
            if batch is None:
                raise UnknownBatchError(batch_id)
        return batch

    async def _ensure_items(
        self, batch: BatchRecord, body: CreateBatchBody, item_actions: list[list[Action]]
    ) -> list[HumanRequestRecord]:
        present = {r.batch_index for r in await self.state.list_by_batch(batch.id)}
        for index, item in enumerate(body.items):
            if index in present:
                continue
            item_id = f"{batch.id}:{index}"
            new = NewHumanRequest(
                id=item_id,
                token=item.token,
                channel=batch.channel,
                namespace=body.namespace,
                message=item.message,
                actions=item_actions[index],
                context=body.context,
                batch_id=batch.id,
                batch_index=index,
            )
            try:
                await self.state.create(new)
            except DuplicateTokenError as exc:
                if exc.existing_id != item_id:
                    raise
            except DuplicateRequestError:
                pass
        return await self.state.list_by_batch(batch.id)

    # --- notify ---------------------------------------------------------------------------------------
    async def notify(self, body: NotifyBody) -> Anchor:
        anchor_id = body.after or body.on
        anchor = await self.resolve_anchor(anchor_id) if anchor_id else None
        route = self._default_route(anchor, body.channel)
        delivery_id, external_id = await self._notify(body.message, route, anchor, body.detail)
        await self._record(
            ev.NotificationSent(
                at=now_iso(),
                id=delivery_id,
                group_id=anchor.group_id if anchor is not None else delivery_id,
                channel=route.channel_ref,
                external_id=UNSET if external_id is None else external_id,
            )
        )
        return Anchor(delivery_id, external_id or "")

    async def _notify(
        self, message: str, route: ChannelRoute, anchor: TimelineContext | None, detail: dict[str, Any] | None
    ) -> tuple[str, str | None]:
        delivery_id = random_uuid4()
        group_id = anchor.group_id if anchor is not None else delivery_id
        await self.state.create_notify_delivery(
            NewNotifyDelivery(id=delivery_id, channel=route.channel_ref, message=message, group_id=group_id)
        )
        entry = TimelineEntry(
            id=random_uuid4(), thread_id=group_id, message=message, detail=detail, created_at=now_iso()
        )
        await self.state.append_timeline(entry)
        thread = self._thread(anchor, route)
        notification = Notification(
            message=message,
            channel=route.adapter.id,
            destination=thread if thread is not None else route.destination,
            detail=detail,
        )
        external_id = await self._call(route.adapter, "notify", route.adapter.notify(notification))
        if external_id is not None and not isinstance(external_id, str):
            raise DeliveryError(f'Channel "{route.adapter.id}" returned an invalid external id')
        if external_id:
            await self.state.set_notify_delivery_external_id(delivery_id, external_id)
        return delivery_id, external_id or None

    # --- timeout --------------------------------------------------------------------------------------
    async def timeout(self, request_id: str) -> HumanResult:
        if self._resolves_from is not None:
            try:  # no read first: the state decides on the record it knows, or reads it itself
                found, timed_out = await self._resolves_from.resolve_from(request_id, _timed_out)
            except _NeedsBatch:
                pass  # a batch item whose external ref is its batch's: below, which reads the batch
            else:
                if timed_out is not None:
                    self._decided(found, timed_out)
                    await self._update_channels(found, timed_out)
                    return timed_out
                if found.result is None:
                    raise AlreadyResolvedError(request_id)
                return found.result  # already resolved: the stored result
        record = await self.state.get(request_id)
        if record is None:
            raise UnknownRequestError(request_id)
        if record.status == "resolved" and record.result is not None:
            return record.result
        batch = await self.state.get_batch(record.batch_id) if record.batch_id is not None else None
        result = TimedOut(id=request_id, external_ref=_external_ref(record, batch))
        try:
            await self.state.resolve(request_id, result)
        except AlreadyResolvedError:
            winner = await self.state.get(request_id)
            if winner is None or winner.result is None:
                raise
            return winner.result
        self._decided(record, result)
        await self._update_channels(record, result)
        return result

    async def timeout_batch(self, batch_id: str) -> list[HumanResult]:
        batch = await self.state.get_batch(batch_id)
        if batch is None:
            raise UnknownBatchError(batch_id)
        items = await self.state.list_by_batch(batch_id)
        results: list[HumanResult] = []
        timed_out: list[str] = []
        for item in items:
            if item.status == "resolved" and item.result is not None:
                results.append(item.result)
                continue
            result: HumanResult = TimedOut(id=item.id, external_ref=_external_ref(item, batch))
            try:
                await self.state.resolve(item.id, result)
            except AlreadyResolvedError:
                winner = await self.state.get(item.id)
                result = winner.result if winner is not None and winner.result is not None else result
            else:
                timed_out.append(item.id)
                self._decided(item, result)
            results.append(result)
        if timed_out:
            await self._record(ev.BatchTimedOut(at=now_iso(), id=batch_id, item_ids=timed_out))
        await self._update_batch_channels(batch, items, results)
        return results

    # --- remind / escalate ----------------------------------------------------------------------------
    async def remind(self, request_id: str, body: RemindBody) -> bool:
        """A reminder or an escalation while pending; `False` (and nothing done) once resolved."""
        record = await self.state.get(request_id)
        if record is None:
            raise UnknownRequestError(request_id)
        if record.status == "resolved":
            return False
        batch_id = UNSET if record.batch_id is None else record.batch_id
        if body.kind == "escalate":
            assert body.channel is not None
            route = resolve_channel(self.adapters, body.channel)
            if body.mode == "redeliver":
                await self._record(
                    ev.RequestEscalated(
                        at=now_iso(), id=request_id, batch_id=batch_id, channel=route.channel_ref, mode="redeliver"
                    )
                )
                await self._redeliver(record, route)
                return True
            message = body.message or DEFAULT_ESCALATE_MESSAGE
            anchor = await self.resolve_anchor(request_id)
            delivery_id, external_id = await self._notify(message, route, anchor, None)
            await self._record(
                ev.RequestEscalated(
                    at=now_iso(),
                    id=request_id,
                    batch_id=batch_id,
                    channel=route.channel_ref,
                    mode="notify",
                    message=message,
                    delivery_id=delivery_id,
                    external_id=UNSET if external_id is None else external_id,
                )
            )
            return True
        route = resolve_channel_key(self.adapters, record.channel)
        message = body.message or DEFAULT_REMIND_MESSAGE
        delivery_id, _ = await self._notify(message, route, await self.resolve_anchor(request_id), None)
        await self._record(
            ev.RequestReminded(
                at=now_iso(),
                id=request_id,
                batch_id=batch_id,
                channel=route.channel_ref,
                message=message,
                delivery_id=delivery_id,
            )
        )
        return True

    async def _redeliver(self, record: HumanRequestRecord, route: ChannelRoute) -> None:
        """The stored request again, to another channel (no thread: it is not that channel's)."""
        await self._deliver(
            record.id, route, record.message, record.actions, record.context, batch_id=record.batch_id, again=True
        )

    async def remind_batch(self, batch_id: str, body: RemindBody) -> bool:
        batch = await self.state.get_batch(batch_id)
        if batch is None:
            raise UnknownBatchError(batch_id)
        items = await self.state.list_by_batch(batch_id)
        pending = [item for item in items if item.status == "pending"]
        if not pending:
            return False
        if body.kind == "escalate":
            assert body.channel is not None
            route = resolve_channel(self.adapters, body.channel)
        else:
            route = resolve_channel_key(self.adapters, batch.channel)
        if body.kind == "escalate" and body.mode == "redeliver":
            await self._record(
                ev.BatchEscalated(at=now_iso(), id=batch_id, channel=route.channel_ref, mode="redeliver")
            )
            await self._redeliver_batch(batch, items, pending, route)
            return True
        message = body.message or (DEFAULT_ESCALATE_MESSAGE if body.kind == "escalate" else DEFAULT_REMIND_MESSAGE)
        delivery_id, _ = await self._notify(message, route, await self.resolve_anchor(batch_id), None)
        if body.kind == "escalate":
            await self._record(
                ev.BatchEscalated(
                    at=now_iso(),
                    id=batch_id,
                    channel=route.channel_ref,
                    mode="notify",
                    message=message,
                    delivery_id=delivery_id,
                )
            )
        else:
            await self._record(ev.BatchReminded(at=now_iso(), id=batch_id, channel=route.channel_ref, message=message))
        return True

    async def _redeliver_batch(
        self,
        batch: BatchRecord,
        items: list[HumanRequestRecord],
        pending: list[HumanRequestRecord],
        route: ChannelRoute,
    ) -> None:
        actions = batch.actions or items[0].actions
        target = _defaults_action(actions, None, needed=False)
        request = BatchHumanRequest(
            batch_id=batch.id,
            channel=route.adapter.id,
            destination=route.destination,
            message=batch.message,
            actions=actions,
            items=[BatchItem(id=i.id, message=i.message, defaults=_item_defaults(i.actions, target)) for i in items],
            context=batch.context,
        )
        if route.adapter.can_send_batch(request):
            await self._deliver_batch(route, request, again=True)
            return
        for item in pending:  # resolved items are not sent again
            await self._redeliver(item, route)

    # --- resolve --------------------------------------------------------------------------------------
    async def resolve(
        self, request_id: str, action_id: str, feedbacks: Mapping[str, Any] | None, by: Reviewer | None
    ) -> HumanResult:
        record = await self.state.get(request_id)
        if record is None:
            raise UnknownRequestError(request_id)
        batch = await self.state.get_batch(record.batch_id) if record.batch_id is not None else None
        if record.status == "resolved":
            return self._repeated(record, action_id, feedbacks, by, batch)
        decision = build_result(
            record.id, record.actions, action_id, feedbacks, external_ref=_external_ref(record, batch), by=by
        )
        try:
            await self.state.resolve(record.id, decision)
        except AlreadyResolvedError:
            winner = await self.state.get(record.id)
            if winner is not None and winner.result is not None and same_decision(winner.result, decision):
                return winner.result
            raise
        self._decided(record, decision)
        await self._update_channels(record, decision)
        return decision

    def _repeated(
        self,
        record: HumanRequestRecord,
        action_id: str,
        feedbacks: Mapping[str, Any] | None,
        by: Reviewer | None,
        batch: BatchRecord | None,
    ) -> HumanResult:
        """A decision on a resolved request: the stored result if it is the same decision, else 409."""
        try:
            decision = build_result(
                record.id, record.actions, action_id, feedbacks, external_ref=_external_ref(record, batch), by=by
            )
        except ValidationError:
            raise AlreadyResolvedError(record.id) from None
        if record.result is not None and same_decision(record.result, decision):
            return record.result
        raise AlreadyResolvedError(record.id)

    async def resolve_batch(
        self, batch_id: str, decisions: Sequence[BatchDecision], by: Reviewer | None
    ) -> list[HumanResult]:
        batch = await self.state.get_batch(batch_id)
        if batch is None:
            raise UnknownBatchError(batch_id)
        items = await self.state.list_by_batch(batch_id)
        chosen: dict[str, BatchDecision] = {}
        for given in decisions:
            if given.request_id in chosen:
                raise ValidationError(f'Two decisions for batch item "{given.request_id}"')
            chosen[given.request_id] = given
        unknown = set(chosen) - {item.id for item in items}
        if unknown:
            raise ValidationError(f'Batch "{batch_id}" has no item "{sorted(unknown)[0]}"')
        # Validate everything before writing anything.
        plan: list[tuple[HumanRequestRecord, HumanResult, bool]] = []
        for item in items:
            decision = chosen.get(item.id)
            if item.status == "resolved":
                stored = (
                    self._repeated(item, decision.action_id, decision.feedbacks, by, batch)
                    if decision is not None
                    else item.result
                )
                if stored is None:
                    raise AlreadyResolvedError(item.id)
                plan.append((item, stored, False))
                continue
            if decision is None:
                raise ValidationError(f'Missing decision for batch item "{item.id}"')
            result: HumanResult = build_result(
                item.id,
                item.actions,
                decision.action_id,
                decision.feedbacks,
                external_ref=_external_ref(item, batch),
                by=by,
            )
            plan.append((item, result, True))
        # Write every item; an item won concurrently keeps the winner's result, the others still resolve.
        results: list[HumanResult] = []
        for item, result, new in plan:
            if new:
                try:
                    await self.state.resolve(item.id, result)
                except AlreadyResolvedError:
                    winner = await self.state.get(item.id)
                    result = winner.result if winner is not None and winner.result is not None else result
                else:
                    self._decided(item, result)
            results.append(result)
        await self._update_batch_channels(batch, items, results)
        return results

    # --- channel updates after a decision ---------------------------------------------------------------
    async def _update_channels(self, record: HumanRequestRecord, result: HumanResult) -> None:
        for channel_ref, external_id in _delivered_to(record).items():
            try:
                adapter = resolve_channel_key(self.adapters, channel_ref).adapter
                await adapter.update(external_id, result)
            except Exception:
                log.warning("hitl: updating %s on channel %r failed", record.id, channel_ref, exc_info=True)

    async def _update_batch_channels(
        self, batch: BatchRecord, items: list[HumanRequestRecord], results: list[HumanResult]
    ) -> None:
        for channel_ref, external_id in _delivered_to(batch).items():
            try:
                adapter = resolve_channel_key(self.adapters, channel_ref).adapter
                await adapter.update_batch(external_id, results)
            except Exception:
                log.warning("hitl: updating batch %s on channel %r failed", batch.id, channel_ref, exc_info=True)
        for item, result in zip(items, results, strict=True):
            await self._update_channels(item, result)


def _delivered_to(subject: HumanRequestRecord | BatchRecord) -> dict[str, str]:
    """Every channel ref the subject was delivered on, with its external id (the primary included)."""
    refs = dict(subject.external_ids or {})
    if subject.external_id is not None:
        refs.setdefault(subject.channel, subject.external_id)
    return refs


def _check_same_request(existing: HumanRequestRecord, body: CreateRequestBody) -> None:
    """A resume token names one request: a retry must carry the same one (REF §10.3 item 17)."""
    if (existing.message, existing.actions, existing.context, existing.namespace) != (
        body.message,
        body.actions,
        body.context,
        body.namespace,
    ):
        raise DuplicateTokenError(existing.id)


class _NeedsBatch(Exception):
    """`_timed_out` cannot make the result from the record alone."""


def _timed_out(record: HumanRequestRecord) -> TimedOut:
    """A timeout's result when the record alone says its external ref (a batch item without an external
    id of its own takes its batch's)."""
    if record.external_id is None and record.batch_id is not None:
        raise _NeedsBatch
    return TimedOut(id=record.id, external_ref=_external_ref(record, None))


def _external_ref(record: HumanRequestRecord, batch: BatchRecord | None) -> str:
    return record.external_id or (batch.external_id if batch is not None else None) or ""
