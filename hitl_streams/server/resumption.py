"""Reliable resumption: after a decision is recorded, resume the workflow until the resolver succeeds.

The decision is written to the state first. Resuming is then a job on a `ResumeQueue`; the `Resumer`
takes jobs, calls `resolver.resolve(token, result)` and retries with capped exponential backoff until
it succeeds. Every attempt, success and failure is an audit event (`resume.attempted`,
`resume.succeeded`, `resume.failed`) on the request's trail.

Two queues implement the same small interface:
- `MemoryResumeQueue`: jobs handed over in process by the core (for `InMemoryState`; jobs die with
  the process, like the state itself);
- `StreamResumeQueue` (`stream_resume.py`): jobs read from the Redis stream of `StreamState` with a
  consumer group, so a decision recorded by any process is resumed even across restarts and crashes.

A resolver that raises `ResumeRejected` says the workflow can never be resumed (it no longer
exists); that ends the job with a final `resume.failed` event instead of retrying forever.

No duplicate resumes while the process lives: once the resolver succeeded, the job's idempotency key is
kept in memory and the bookkeeping (`resume.succeeded`, then the queue's `done`) is retried with backoff
until the state answers again; a job whose key is known is never handed to the resolver again, only
finished. Across a crash between the engine's answer and that record, the decision is resumed again, with
the same `idempotency_key` (see `resolvers.py`), so the engine can drop the repeat.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .._cancel import reraise_lost_cancel
from .._time import now_iso
from ..history.events import Event, ResumeAttempted, ResumeFailed, ResumeSucceeded
from ..results import HumanResult
from ..state import State
from .audit import Auditable
from .resolvers import Resolver, ResumeRejected, accepts_idempotency_key

__all__ = ["MemoryResumeQueue", "ResumeJob", "ResumeQueue", "Resumer", "RetryPolicy"]

log = logging.getLogger("hitl_streams.server")


@dataclass(slots=True)
class ResumeJob:
    """Resume the workflow waiting on request `request_id` with `result`.

    `token` is filled in by the `Resumer` from the state when the queue does not carry it; `attempts`
    counts earlier attempts (a queue that survives restarts knows them); `handle` is the queue's own;
    `decision_id` is the position of the decision event in the history, when the queue knows it.
    """

    request_id: str
    result: HumanResult
    batch_id: str | None = None
    token: str | None = None
    attempts: int = 0
    handle: Any = None
    decision_id: str | None = None

    @property
    def idempotency_key(self) -> str:
        """The same for every delivery of one decision: `{request id}:{decision event id}` (the request id
        alone when the queue does not know the event's position; a request has one decision)."""
        return self.request_id if self.decision_id is None else f"{self.request_id}:{self.decision_id}"


@runtime_checkable
class ResumeQueue(Protocol):
    """Where resume jobs come from. `submit` is called right after a decision is recorded."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submit(self, job: ResumeJob) -> None:
        """A decision was just recorded in this process (a queue fed by the stream may ignore it)."""
        ...

    async def get(self) -> ResumeJob | None:
        """The next job to run, or `None` when there is none yet or `wake` was called.

        Returning regularly lets the resumer stop without cancelling a call in flight: redis-py can lose
        a cancellation that lands while a blocking read completes, and the task then never ends.
        """
        ...

    def wake(self) -> None:
        """Make a `get` in progress return soon (the resumer is stopping)."""
        ...

    async def renew(self, job: ResumeJob) -> None:
        """Still working on `job` (between retries): keep other consumers off it."""
        ...

    async def done(self, job: ResumeJob) -> None:
        """`job` is finished (resumed, or rejected for good); never hand it out again."""
        ...


class MemoryResumeQueue:
    """Jobs handed over in process. Enough for `InMemoryState`, whose data lives in the process too."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[ResumeJob | None] = asyncio.Queue()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def submit(self, job: ResumeJob) -> None:
        self._queue.put_nowait(job)

    async def get(self) -> ResumeJob | None:
        return await self._queue.get()

    def wake(self) -> None:
        self._queue.put_nowait(None)

    async def renew(self, job: ResumeJob) -> None:
        return None

    async def done(self, job: ResumeJob) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before retry n (1-based): `min(maximum, initial * multiplier ** (n - 1))`, ± `jitter`."""

    initial: float = 0.1
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def delay(self, failures: int) -> float:
        base = min(self.maximum, self.initial * self.multiplier ** max(0, failures - 1))
        return max(0.0, base * (1 + self.jitter * (2 * random.random() - 1)))


@dataclass
class Resumer:
    """Runs resume jobs from a queue, each in its own task, until stopped."""

    state: State
    resolver: Resolver
    queue: ResumeQueue
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 64
    grace: float = 2.0
    """How long `stop` waits for the work in flight before abandoning it."""
    remember: int = 100_000
    """How many resumed decisions (idempotency keys) are remembered in memory, beyond those whose
    bookkeeping is still being retried (a claimed or replayed entry of an older one is caught by the
    `resume.succeeded` event in its history)."""
    bookkeeping_max_delay: float = 5.0
    """Cap of the backoff between retries of `resume.succeeded` / `done` while the state is unreachable."""
    _runner: asyncio.Task[None] | None = None
    _jobs: set[asyncio.Task[None]] = field(default_factory=set)
    _closing: bool = False
    _finishing: set[asyncio.Task[Any]] = field(default_factory=set)
    """Job tasks past a successful resolver call, recording it."""
    _resumed: collections.OrderedDict[str, bool] = field(default_factory=collections.OrderedDict)
    """Idempotency keys of decisions resumed by this process -> whether `resume.succeeded` is recorded."""
    _keyed: bool | None = None

    def resumed(self, job: ResumeJob) -> bool:
        """True iff this process already resumed `job`'s decision (the resolver succeeded)."""
        return job.idempotency_key in self._resumed

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    def start(self) -> None:
        """Start taking jobs (in the running event loop). Idempotent."""
        if not self.running:
            self._closing = False
            self._runner = asyncio.create_task(self._run(), name="hitl-resumer")

    async def stop(self) -> None:
        """Stop taking jobs, end the jobs in flight, hand unfinished work back to the queue. Bounded in time."""
        runner, self._runner = self._runner, None
        self._closing = True
        self.queue.wake()
        if runner is not None:
            # The runner notices `_closing` when `get` returns; cancel only if it does not.
            await _settle([runner], self.grace, cancel_first=False)
        # Jobs whose workflow was resumed get `grace` to record it (else the next server resumes them
        # again); the others are cancelled at once and their entries handed back.
        finishing = [task for task in self._jobs if task in self._finishing]
        others = [task for task in self._jobs if task not in self._finishing]
        await asyncio.gather(
            _settle(finishing, self.grace, cancel_first=False), _settle(others, self.grace, cancel_first=True)
        )
        self._jobs.clear()
        self._finishing.clear()
        await self.queue.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.queue.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hitl: starting the resume queue failed; retrying in 1 s")
                await asyncio.sleep(1.0)
        slots = asyncio.Semaphore(self.concurrency)
        failing = 0
        while not self._closing:
            try:
                job = await self.queue.get()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The first failure of a streak with its traceback, the next ones in a line (an outage).
                failing += 1
                log.warning(
                    "hitl: reading resume jobs failed (%s); retrying in 1 s", _describe(exc), exc_info=failing == 1
                )
                await asyncio.sleep(1.0)
                continue
            failing = 0
            reraise_lost_cancel()
            if job is None:
                continue
            await slots.acquire()
            task = asyncio.create_task(self._resume(job))
            self._jobs.add(task)

            def finished(task: asyncio.Task[None]) -> None:
                self._jobs.discard(task)
                self._finishing.discard(task)
                slots.release()

            task.add_done_callback(finished)

    async def _record(self, event: Event) -> None:
        """Best effort (an attempt, a retryable failure): logged, not retried."""
        if isinstance(self.state, Auditable):
            try:
                await self.state.record(event)
            except Exception:
                log.warning("hitl: could not record %s for %s", event.__class__.__name__, event.subjects()[0])

    async def _token(self, job: ResumeJob) -> str | None:
        if job.token is None:
            record = await self.state.get(job.request_id)
            if record is not None:
                job.token, job.batch_id = record.token, record.batch_id
        return job.token

    async def _call_resolver(self, token: str, job: ResumeJob) -> None:
        if self._keyed is None:
            self._keyed = accepts_idempotency_key(self.resolver.resolve)
        if self._keyed:
            await self.resolver.resolve(token, job.result, idempotency_key=job.idempotency_key)  # type: ignore[call-arg]
        else:
            await self.resolver.resolve(token, job.result)

    def _remember(self, key: str, recorded: bool) -> None:
        self._resumed[key] = recorded
        self._resumed.move_to_end(key)
        while len(self._resumed) > self.remember:
            # The oldest recorded one (the history has it); keys still being recorded stay.
            oldest = next((k for k, recorded in self._resumed.items() if recorded), None)
            if oldest is None:
                break
            del self._resumed[oldest]

    async def _finish(self, job: ResumeJob, final: Event | None, *, succeeded: bool = False) -> None:
        """Record `final` (if any) and mark the job done, retrying both until the state answers: a job
        left half done would be handed out again and, for a success, resumed twice."""
        key = job.idempotency_key
        recorded = final is None or not isinstance(self.state, Auditable)
        failures = 0
        while True:
            try:
                if not recorded:
                    assert final is not None and isinstance(self.state, Auditable)
                    await self.state.record(final)
                    recorded = True
                    if succeeded:
                        self._remember(key, True)
                await self.queue.done(job)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                what = "acknowledging" if recorded else f"recording {type(final).__name__} for"
                log.warning(
                    "hitl: %s request %s failed (%s); retrying (try %d)",
                    what,
                    job.request_id,
                    _describe(exc),
                    failures,
                )
                await asyncio.sleep(min(self.bookkeeping_max_delay, self.retry.delay(failures)))
                reraise_lost_cancel()

    async def _resume(self, job: ResumeJob) -> None:
        """Run one job to its end; never lets an exception escape the task (it is logged instead)."""
        try:
            await self._run_job(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hitl: resuming request %s stopped on an unexpected error", job.request_id)

    async def _run_job(self, job: ResumeJob) -> None:
        """Attempt until the resolver succeeds (or rejects the job for good)."""
        key = job.idempotency_key
        if key in self._resumed:
            # Resumed already by this process (a re-claimed or replayed entry): finish, never resume again.
            recorded = self._resumed[key]
            final = None if recorded else ResumeSucceeded(at=now_iso(), attempt=max(job.attempts, 1), **_ids(job))
            await self._finish(job, final, succeeded=True)
            return
        failures = 0
        while True:
            attempt = job.attempts + 1
            try:
                token = await self._token(job)
            except Exception as exc:  # the state is unreachable: wait, this is not an attempt
                token, error = None, f"reading the request failed: {_describe(exc)}"
            else:
                ids = _ids(job)
                if token is None:
                    error = "the request no longer exists"
                    await self._finish(job, ResumeFailed(at=now_iso(), attempt=attempt, error=error, **ids))
                    return
                job.attempts = attempt
                ids = _ids(job)
                await self._record(ResumeAttempted(at=now_iso(), attempt=attempt, **ids))
                try:
                    await self._call_resolver(token, job)
                except asyncio.CancelledError:
                    raise
                except ResumeRejected as exc:
                    error = _describe(exc, token)
                    await self._finish(job, ResumeFailed(at=now_iso(), attempt=attempt, error=error, **ids))
                    return
                except Exception as exc:
                    error = _describe(exc, token)
                else:
                    self._remember(key, False)
                    current = asyncio.current_task()
                    if current is not None:
                        self._finishing.add(current)
                    await self._finish(job, ResumeSucceeded(at=now_iso(), attempt=attempt, **ids), succeeded=True)
                    return
            failures += 1
            delay = self.retry.delay(failures)
            if token is not None:
                retry_in_ms = round(delay * 1000)
                await self._record(
                    ResumeFailed(at=now_iso(), attempt=attempt, error=error, retry_in_ms=retry_in_ms, **ids)
                )
            log.warning("hitl: resuming request %s failed (attempt %d): %s", job.request_id, attempt, error)
            await asyncio.sleep(delay)
            with contextlib.suppress(Exception):
                await self.queue.renew(job)
            reraise_lost_cancel()


async def _settle(tasks: list[asyncio.Task[None]], grace: float, *, cancel_first: bool) -> None:
    """Wait for `tasks` to end (cancelling them first, or after `grace`); abandon any that will not."""
    if not tasks:
        return
    if cancel_first:
        for task in tasks:
            task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=grace)
    if pending and not cancel_first:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=grace)
    if pending:
        log.warning("hitl: %d resume task(s) did not stop within %.1f s; abandoned", len(pending), grace)
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()


def _ids(job: ResumeJob) -> dict[str, Any]:
    """The subject ids of a job's audit events (a batch item's events show on the batch's trail too)."""
    return {"id": job.request_id} if job.batch_id is None else {"id": job.request_id, "batch_id": job.batch_id}


def _describe(exc: BaseException, token: str | None = None) -> str:
    """An error for the audit trail and the log: type and message, bounded, with the token blanked out."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if token:
        text = text.replace(token, "[token]")
    return text[:500]
