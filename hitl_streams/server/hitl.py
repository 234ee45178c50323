"""`Hitl`: the server object. It ties a state, channel adapters, a resolver and a secret together and
exposes the HTTP API (`hitl.asgi`), the programmatic inbox (`hitl.inbox`) and the background work
(`async with hitl:`) that resumes workflows after decisions.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from ..history.memory_state import InMemoryState
from ..limits import BODY_READ_TIMEOUT_SECONDS, MAX_BODY_BYTES
from ..reviewers import ReviewerDirectory
from ..state import State
from .asgi import HitlASGI
from .auth import BearerAuth
from .channels import Adapter, with_inbox
from .core import Core
from .deadlines import DeadlineRunner, ScheduleStore
from .inbox import Inbox
from .inbox_api import InboxAPI, InboxRoutes
from .inbox_settings import InboxSettings
from .inprocess import LocallyRouted, LocalWaits
from .resolvers import CallbackResolver, Resolver
from .resumption import MemoryResumeQueue, ResumeJob, ResumeQueue, Resumer, RetryPolicy
from .reviewer_auth import ReviewerAuth
from .reviewer_inbox import ReviewerInbox
from .web_pages import web_pages

if TYPE_CHECKING:
    from ..client import HitlClient

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Hitl", "default_resume_queue"]

DEFAULT_MAX_BODY_BYTES = MAX_BODY_BYTES


def default_resume_queue(
    state: State, *, include_timeouts: bool = True, claim_idle_ms: int | None = None
) -> ResumeQueue:
    """The stream-driven queue for `StreamState`, else an in-process one."""
    if getattr(state, "kind", None) == "redis-streams":
        from .stream_resume import StreamResumeQueue

        options = {} if claim_idle_ms is None else {"claim_idle_ms": claim_idle_ms}
        return StreamResumeQueue.for_state(state, include_timeouts=include_timeouts, **options)
    return MemoryResumeQueue()


class Hitl:
    """A human-in-the-loop server.

    - `state`: where requests live; a fresh `InMemoryState()` by default (one per `Hitl`, not shared).
    - `resolver`: resumes workflows after a decision (`CallbackResolver`, `WebhookResolver`, or yours; a
      bare `async def resume(token, result)` is wrapped in a `CallbackResolver`).
      Without one, decisions are recorded but nothing is resumed (workflows then learn the outcome
      from the timeout route).
    - `adapters`: delivery channels; the first is the default and the `inbox` channel is always added.
    - `secret`: bearer secret of the internal API; defaults to `HITL_SECRET`. Empty means open (warned once).
    - `max_body_bytes`: larger request bodies get 413 (1 MiB by default); `body_timeout`: a body not
      received within this many seconds of the request's start gets 408 (30 s by default).
    - `max_body_bytes`: larger request bodies get 413 (1 MiB by default).
    - `inbox`: the reviewer side (`InboxSettings(...)`, or `True` for the defaults): the JSON inbox API
      under `inbox/api/` and the web inbox under `inbox/` (needs the `inbox` extra), for reviewers signed
      in with their own credentials. Off by default: the routes do not exist. The state must keep
      reviewers (`InMemoryState`, `StreamState`).
    - `deadlines`: run server-side schedules (requests created with a `schedule`: they time out and remind
      on their own); `deadline_poll_seconds`: how often to look for schedules other replicas set;
      `deadline_lease_ms`: how long a replica that died while firing holds a subject up.
    - `retry`: backoff between resume attempts; `resume_queue`: where resume jobs come from (default:
      the Redis stream for `StreamState`, in process otherwise); `resume_timeouts`: also resume a
      workflow with its `TimedOut` result, which closes waits the client abandoned.
    - `resume_claim_idle_ms`: on `StreamState`, how long the decisions a dead replica held wait before
      another replica takes them over (10 s by default; live replicas renew theirs every third of it).
    """

    def __init__(
        self,
        state: State | None = None,
        resolver: Resolver | Callable[..., Awaitable[None]] | None = None,
        adapters: Sequence[Adapter] = (),
        secret: str | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        retry: RetryPolicy | None = None,
        resume_queue: ResumeQueue | None = None,
        resume_timeouts: bool = True,
        inbox: InboxSettings | bool | None = None,
        body_timeout: float = BODY_READ_TIMEOUT_SECONDS,
        resume_claim_idle_ms: int | None = None,
        deadlines: bool = True,
        deadline_poll_seconds: float = 0.5,
        deadline_lease_ms: int = 30_000,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if not body_timeout > 0:
            raise ValueError("body_timeout must be positive")
        self.state: State = state if state is not None else InMemoryState()
        self.adapters = with_inbox(adapters)
        ids = [a.id for a in self.adapters]
        if len(set(ids)) != len(ids):
            raise ValueError(f"adapter ids must be unique, got {ids}")
        if resolver is not None and not hasattr(resolver, "resolve"):
            # A bare `async def resume(token, result)` is the obvious thing to pass: wrap it.
            if not callable(resolver):
                raise TypeError(f"resolver must have an async resolve(token, result) or be one, got {resolver!r}")
            resolver = CallbackResolver(resolver)
        self.resolver: Resolver | None = resolver
        # Waits of in-process clients (`client()`), resumed by this Hitl directly.
        self.local_waits = LocalWaits()
        self._queue = (
            resume_queue
            if resume_queue is not None
            else default_resume_queue(self.state, include_timeouts=resume_timeouts, claim_idle_ms=resume_claim_idle_ms)
        )
        self._resumer = (
            None
            if resolver is None
            else Resumer(self.state, LocallyRouted(self.local_waits, resolver), self._queue, retry or RetryPolicy())
        )
        self._core = Core(
            self.state, self.adapters, self._on_decision, resume_timeouts=resume_timeouts, on_schedule=self._on_schedule
        )
        self._deadlines = (
            DeadlineRunner(self._core, self.state, poll_seconds=deadline_poll_seconds, lease_ms=deadline_lease_ms)
            if deadlines and isinstance(self.state, ScheduleStore)
            else None
        )
        self.inbox = Inbox(self._core)
        self._secret = secret if secret is not None else os.environ.get("HITL_SECRET")
        self._auth = BearerAuth(self._secret)
        self.inbox_settings = InboxSettings.of(inbox)
        self.reviewer_auth: ReviewerAuth | None = None
        self.reviewer_inbox: ReviewerInbox | None = None
        self.inbox_routes: InboxRoutes | None = None
        if self.inbox_settings is not None:
            directory = getattr(self.state, "reviewers", None)
            if not isinstance(directory, ReviewerDirectory):
                raise ValueError(f"inbox=...: {type(self.state).__name__} keeps no reviewers (state.reviewers)")
            self.reviewer_auth = ReviewerAuth(directory, proxy_header=self.inbox_settings.trust_proxy_header)
            self.reviewer_inbox = ReviewerInbox(self.inbox)
            self.inbox_routes = InboxRoutes(
                InboxAPI(self.reviewer_auth, self.reviewer_inbox), web_pages(self.reviewer_auth, self.reviewer_inbox)
            )
        for adapter in self.adapters:  # channels that decide (Slack) need the state, inbox and reviewers
            bind = getattr(adapter, "bind", None)
            if callable(bind):
                bind(self)
        self.asgi = HitlASGI(
            self._core,
            self._auth,
            max_body_bytes=max_body_bytes,
            state_kind=str(getattr(self.state, "kind", type(self.state).__name__)),
            on_startup=self.start,
            on_shutdown=self.stop,
            inbox=self.inbox_routes,
            body_timeout=body_timeout,
        )

    def __repr__(self) -> str:
        kind = getattr(self.state, "kind", type(self.state).__name__)
        return f"Hitl(state={kind!r}, adapters={[a.id for a in self.adapters]!r}, open={self._auth.open})"

    @property
    def core(self) -> Core:
        """The services behind the HTTP API, for callers that want them without HTTP."""
        return self._core

    @property
    def is_open(self) -> bool:
        """True when no bearer secret is set (the internal API accepts anyone)."""
        return self._auth.open

    @property
    def running(self) -> bool:
        return self._resumer is not None and self._resumer.running

    def client(self, *, poll_interval: float | None = None) -> HitlClient:
        """A workflow client for code running in this process (scripts, notebooks, agent loops).

        `await hitl.client().wait_for_human(message=..., actions=..., timeout="10m")`: requests go to this
        Hitl's HTTP API in process, waits are resumed by this Hitl directly, timers are `asyncio.sleep`.
        NOT durable: a wait ends with the process. With a `StreamState` a restarted script can still get a
        decision made while it was down: `wait_for_human(pending)` with a `Pending` it saved. Pass
        `poll_interval`: seconds between looks at the stored record while waiting, to see decisions recorded
        by other processes (default: every second for a `StreamState`, never otherwise; 0: never).
        """
        from .inprocess import in_process_client

        if poll_interval is None and getattr(self.state, "kind", None) == "redis-streams":
            poll_interval = 1.0
        return in_process_client(self, poll_interval=poll_interval or None)

    def _on_decision(self, job: ResumeJob) -> None:
        if job.token is not None and self.local_waits.resolve(job.token, job.result):
            return  # an in-process wait: resumed right here
        if self._resumer is None:
            return
        self._queue.submit(job)
        if not self._resumer.running:
            # Decided outside `async with hitl:` (a script, a test): start resuming right here.
            self._resumer.start()

    def _on_schedule(self) -> None:
        if self._deadlines is not None and self._deadlines.running:
            self._deadlines.wake()

    @property
    def deadlines(self) -> DeadlineRunner | None:
        """The runner of server-side schedules (None with `deadlines=False` or a state without them)."""
        return self._deadlines

    async def start(self) -> None:
        """Start the background work (resuming workflows, server-side deadlines). Idempotent."""
        if self._resumer is not None:
            self._resumer.start()
        if self._deadlines is not None:
            self._deadlines.start()

    async def stop(self) -> None:
        """Stop the background work; unfinished resumptions stay in the stream for the next start, and
        schedules stay due for the next replica that runs."""
        if self._deadlines is not None:
            await self._deadlines.stop()
        if self._resumer is not None:
            await self._resumer.stop()

    async def __aenter__(self) -> Hitl:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
