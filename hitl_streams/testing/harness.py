"""`create_test_hitl()`: test your own workflow code with no engine and no network (REF §8).

    t = create_test_hitl()
    waiting = asyncio.create_task(t.client.wait_for_human(message="Deploy?", actions=..., timeout="1h"))
    await t.flush_sleep()                  # the timer the client is sleeping on fires now
    result = await waiting                 # TimedOut (the server said so)

- `t.hitl` is a real `Hitl`; `t.client` a real `HitlClient` whose requests go to `t.hitl.asgi` in
  process (with the same secret) and whose suspensions `t.hitl` resumes directly when a decision is made
  (`await t.hitl.inbox.resolve(...)`).
- Timers never fire by themselves: `sleep(seconds)` is recorded in `t.sleep_calls` and waits until
  `await t.flush_sleep()` fires the oldest pending one (FIFO). A sleep that lost its race (the human
  decided first) is cancelled and leaves the queue, so a flush never fires a stale timer.
- The state is a NEW `InMemoryState` per harness unless you pass one (the reference shared one process-
  global state between every test; here tests cannot see each other's requests).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta

from ..client import HitlClient, HitlRequest, HitlResponse, create_hitl_client
from ..errors import HitlError
from ..history.memory_state import InMemoryState
from ..results import HumanResult
from ..server.channels import Adapter
from ..server.hitl import Hitl
from ..server.inprocess import INPROCESS_URL, InProcessPrimitives, call_asgi
from ..state import State

__all__ = ["TestHitl", "create_test_hitl"]

_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


class TestHitl:
    """A `Hitl`, a client wired to it, and manual control of the client's timers."""

    __test__ = False  # not a pytest test class

    def __init__(self, hitl: Hitl, *, start: datetime = _EPOCH) -> None:
        self.hitl = hitl
        self.sleep_calls: list[float] = []
        self._sleeps: list[tuple[float, asyncio.Future[None]]] = []
        self._sleeping = asyncio.Event()
        self._counter = itertools.count(1)
        self._start = start
        self._slept = 0.0
        self._inprocess = InProcessPrimitives(hitl.state, hitl.local_waits, hitl.asgi)
        self.client: HitlClient = create_hitl_client(self, url=INPROCESS_URL, secret=hitl._secret or "")

    # --- the primitives -------------------------------------------------------------------------------
    def suspend(self) -> tuple[str, Awaitable[HumanResult]]:
        token = f"test-token-{next(self._counter)}"
        return token, self.hitl.local_waits.register(token)

    def reattach(self, token: str) -> Awaitable[HumanResult]:
        """A `Pending` from another client: its stored result if decided, else a wait on this Hitl."""
        return self._inprocess.reattach(token)

    async def sleep(self, seconds: float) -> None:
        self.sleep_calls.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seconds, future)
        self._sleeps.append(entry)
        self._sleeping.set()
        try:
            await future
        finally:
            if entry in self._sleeps:  # cancelled: it lost its race
                self._sleeps.remove(entry)
        self._slept += seconds

    async def request(self, request: HitlRequest) -> HitlResponse:
        return await call_asgi(self.hitl.asgi, request)

    def now(self) -> datetime:
        """A fixed start (Monday 2026-01-05 09:00 UTC) plus the simulated time slept so far."""
        return self._start + timedelta(seconds=self._slept)

    # --- control --------------------------------------------------------------------------------------
    @property
    def pending_sleeps(self) -> int:
        return len(self._sleeps)

    async def flush_sleep(self, *, within: float = 5.0) -> float:
        """Fire the oldest pending sleep (waiting up to `within` seconds for one); returns its duration."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self._sleeps:
            self._sleeping.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HitlError(f"flush_sleep: nothing was sleeping within {within} s")
            try:
                await asyncio.wait_for(self._sleeping.wait(), remaining)
            except TimeoutError:
                continue
        seconds, future = self._sleeps.pop(0)
        future.set_result(None)
        await asyncio.sleep(0)  # let the sleeper run on
        return seconds


def create_test_hitl(
    *, state: State | None = None, adapters: Sequence[Adapter] = (), secret: str | None = None
) -> TestHitl:
    """A `TestHitl` on `state` (a new `InMemoryState` by default), `adapters` and `secret`."""
    hitl = Hitl(state=state if state is not None else InMemoryState(), adapters=adapters, secret=secret or "")
    return TestHitl(hitl)
