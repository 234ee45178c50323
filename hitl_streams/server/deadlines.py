"""Server-side deadlines and reminders: the server keeps a request's schedule, so it times out and reminds
on its own, with no workflow waiting.

A schedule is set once per request or batch (`schedule.set`), projected into a due index (step 0009), and
run by `DeadlineRunner` on every replica:

- A replica takes a due subject under a lease (`lease:due:{id}`), so one replica at a time works on it,
  and reads its schedule again under the lease: a replica that woke a moment later sees the item done.
- The deadline goes through `Core.timeout` / `timeout_batch`: the same compare-and-set as `…/timeout`, so a
  human decision that won the race is kept and nothing else changes; the workflow is resumed as usual.
- A reminder or an escalation goes through `Core.remind` / `remind_batch`, the `…/remind` path.
- `schedule.fired` records each fire with what is due next (and how late it ran); a fire recorded is
  never repeated. A replica that dies holding a lease lets it lapse and another replica takes over; if it
  died between sending a reminder and recording the fire, the reminder is found in the subject's history
  (a `request.reminded` / `escalated` at or after the due time) and not sent twice.
- Reminders that fell due while no server ran are folded into one (the latest; `skipped` counts the
  others), and a deadline that passed meanwhile fires once, late (`lateMs`), before any reminder.
- A decision ends the schedule: the runner records `schedule.ended` the next time something is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol, runtime_checkable

from msgspec import UNSET

from .._cancel import reraise_lost_cancel
from .._time import iso_to_ms, ms_to_iso, now_iso, now_ms
from ..history import events as ev
from ..results import TimedOut
from ..state import State
from .schedules import DEADLINE, Due, ServerSchedule, due_after
from .wire import parse_remind

__all__ = ["DeadlineRunner", "ScheduleStore", "schedule_event"]

log = logging.getLogger("hitl_streams.server")

_REMINDED = (ev.RequestReminded, ev.RequestEscalated, ev.BatchReminded, ev.BatchEscalated)


@runtime_checkable
class ScheduleStore(Protocol):
    """What a State needs for server-side schedules (StreamState and InMemoryState have it)."""

    async def due_schedules(self, until_ms: int, limit: int = 100) -> list[str]: ...

    async def next_due_ms(self) -> int | None: ...

    async def get_schedule(self, subject_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None: ...

    async def record(self, event: ev.Event) -> None: ...

    async def audit(self, subject_id: str) -> list[ev.AuditRecord]: ...

    async def acquire_lease(self, name: str, ttl_ms: int) -> str | None: ...

    async def release_lease(self, name: str, token: str) -> None: ...


def schedule_event(subject_id: str, subject: str, anchor: str, schedule: ServerSchedule) -> ev.ScheduleSet:
    """The `schedule.set` event of a subject created at `anchor`, with its first due item."""
    timeout_at = schedule.timeout_at(anchor)
    reminders = schedule.encoded_reminders()
    first = next(due_after(anchor, timeout_at, reminders), None)
    return ev.ScheduleSet(
        at=now_iso(),
        id=subject_id,
        subject=subject,
        anchor=anchor,
        timeout_at=UNSET if timeout_at is None else timeout_at,
        reminders=reminders,
        next_at=UNSET if first is None else ms_to_iso(first.at_ms),
        next_fire=UNSET if first is None else first.fire,
    )


class _Core(Protocol):
    """The services the runner fires through (`hitl_streams.server.core.Core`)."""

    state: State

    async def timeout(self, request_id: str) -> Any: ...

    async def timeout_batch(self, batch_id: str) -> Any: ...

    async def remind(self, request_id: str, body: Any) -> bool: ...

    async def remind_batch(self, batch_id: str, body: Any) -> bool: ...


class DeadlineRunner:
    """Fires the due items of server-side schedules. Start it with `start()`; `wake()` after setting a
    schedule makes it look again at once. Polls every `poll_seconds` for schedules other replicas set."""

    def __init__(
        self,
        core: _Core,
        store: ScheduleStore,
        *,
        poll_seconds: float = 0.5,
        lease_ms: int = 30_000,
        batch: int = 100,
        concurrency: int = 16,
    ) -> None:
        self.core = core
        self.store = store
        self.poll_seconds = poll_seconds
        self.lease_ms = lease_ms
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hitl-deadlines")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # its tick's fires are cancelled with it
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            reraise_lost_cancel()
            try:
                await self.tick()
                wait = await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("hitl: the deadline runner could not read the due index; retrying", exc_info=True)
                wait = self.poll_seconds
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _until_next(self) -> float:
        following = await self.store.next_due_ms()
        if following is None:
            return self.poll_seconds
        return max(0.0, min(self.poll_seconds, (following - now_ms()) / 1000))

    async def tick(self) -> int:
        """Fire what is due now; the number of subjects taken. Fires run concurrently (bounded), and a tick
        ends when all of them have, so no subject is ever taken twice by one runner."""
        due = await self.store.due_schedules(now_ms(), self.batch)
        await asyncio.gather(*(self._guarded(subject_id) for subject_id in due))
        return len(due)

    async def _guarded(self, subject_id: str) -> None:
        try:
            async with self._slots:
                await self.fire(subject_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("hitl: could not run the schedule of %s; it stays due", subject_id, exc_info=True)

    async def fire(self, subject_id: str) -> bool:
        """Run what is due for one subject, under its lease. False if another replica holds it or
        nothing is due any more."""
        lease = await self.store.acquire_lease(f"due:{subject_id}", self.lease_ms)
        if lease is None:
            return False
        try:
            return await self._fire_locked(subject_id)
        finally:
            await self.store.release_lease(f"due:{subject_id}", lease)

    async def _fire_locked(self, subject_id: str) -> bool:
        found = await self.store.get_schedule(subject_id)
        now = now_ms()
        if found is None:
            return False
        spec, following = found
        if "at" not in following or iso_to_ms(following["at"]) > now:
            return False  # done, or another replica fired it a moment ago
        subject = str(spec.get("subject", "request"))
        if await self._decided(subject, subject_id):
            await self._record_end(subject_id, subject, "decided")
            return True
        anchor, timeout_at = str(spec["anchor"]), spec.get("timeoutAt")
        reminders: list[dict[str, Any]] = spec.get("reminders", [])
        first = int(following["fire"])
        remaining = (
            iter([Due(DEADLINE, iso_to_ms(timeout_at))])
            if first == DEADLINE and isinstance(timeout_at, str)
            else due_after(anchor, timeout_at, reminders, None if first <= 0 else first - 1)
        )
        overdue: list[Due] = []
        upcoming: Due | None = None
        for due in remaining:
            if due.at_ms > now:
                upcoming = due
                break
            overdue.append(due)
            if due.fire == DEADLINE:
                break
        if not overdue:
            return False
        deadline = next((d for d in overdue if d.fire == DEADLINE), None)
        if deadline is not None:
            outcome = await self._time_out(subject, subject_id)
            await self._record_fire(subject_id, subject, deadline, now, len(overdue) - 1, outcome, None)
            return True
        due = overdue[-1]
        outcome = await self._remind(subject, subject_id, due)
        await self._record_fire(subject_id, subject, due, now, len(overdue) - 1, outcome, upcoming)
        return True

    async def _decided(self, subject: str, subject_id: str) -> bool:
        state = self.core.state
        if subject == "batch":
            items = await state.list_by_batch(subject_id)
            return all(item.status == "resolved" for item in items)
        record = await state.get(subject_id)
        return record is None or record.status == "resolved"

    async def _time_out(self, subject: str, subject_id: str) -> str:
        if subject == "batch":
            results = await self.core.timeout_batch(subject_id)
            return "timed_out" if any(isinstance(r, TimedOut) for r in results) else "already_resolved"
        result = await self.core.timeout(subject_id)
        return "timed_out" if isinstance(result, TimedOut) else "already_resolved"

    async def _remind(self, subject: str, subject_id: str, due: Due) -> str:
        assert due.entry is not None
        body = due.entry.remind_body()
        kind = "escalated" if body.get("kind") == "escalate" else "reminded"
        if await self._already_sent(subject_id, due.at_ms):
            return kind  # sent before a crash, not recorded as fired: do not send it twice
        remind = parse_remind(body)
        if subject == "batch":
            pending = await self.core.remind_batch(subject_id, remind)
        else:
            pending = await self.core.remind(subject_id, remind)
        return kind if pending else "already_resolved"

    async def _already_sent(self, subject_id: str, due_ms: int) -> bool:
        """A reminder or escalation in the subject's history at or after `due_ms` and after its last
        schedule event: a replica sent it and died before recording the fire."""
        sent = False
        for item in await self.store.audit(subject_id):
            event = item.event
            if isinstance(event, ev.ScheduleSet | ev.ScheduleFired | ev.ScheduleEnded):
                sent = False
            elif isinstance(event, _REMINDED) and iso_to_ms(event.at) >= due_ms:
                sent = True
        return sent

    async def _record_fire(
        self, subject_id: str, subject: str, due: Due, now: int, skipped: int, outcome: str, upcoming: Due | None
    ) -> None:
        event = ev.ScheduleFired(
            at=now_iso(),
            id=subject_id,
            subject=subject,
            fire=due.fire,
            due_at=ms_to_iso(due.at_ms),
            late_ms=max(0, now - due.at_ms),
            skipped=skipped,
            outcome=outcome,
            next_at=UNSET if upcoming is None else ms_to_iso(upcoming.at_ms),
            next_fire=UNSET if upcoming is None else upcoming.fire,
        )
        await self._keep_trying(event)

    async def _record_end(self, subject_id: str, subject: str, reason: str) -> None:
        await self._keep_trying(ev.ScheduleEnded(at=now_iso(), id=subject_id, subject=subject, reason=reason))

    async def _keep_trying(self, event: ev.Event) -> None:
        """Record a fire until Redis takes it: a fire that ran but is not recorded would run again."""
        delay = 0.05
        while True:
            try:
                await self.store.record(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("hitl: could not record %s; retrying", type(event).__name__, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
