"""`/healthz`: whether the state answers, checked cheaply.

A load balancer may poll it many times a second from many places: one check (the state's `ping()`,
bounded by a short timeout) answers every poll for `ttl` seconds, and concurrent polls share the check
in flight. A state without `ping()` (in memory) is always up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from ..unavailable import is_unavailable

__all__ = ["HEALTH_TIMEOUT_SECONDS", "HEALTH_TTL_SECONDS", "HealthCheck"]

log = logging.getLogger("hitl_streams.server")

HEALTH_TTL_SECONDS: Final = 1.0
HEALTH_TIMEOUT_SECONDS: Final = 1.0


class HealthCheck:
    """`await check()` is True when `ping` answered within `timeout`, cached for `ttl` seconds."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[object]] | None,
        *,
        ttl: float = HEALTH_TTL_SECONDS,
        timeout: float = HEALTH_TIMEOUT_SECONDS,
    ) -> None:
        self._ping = ping
        self._ttl, self._timeout = ttl, timeout
        self._checked_at = -float("inf")
        self._ok = True
        self._running: asyncio.Task[bool] | None = None

    async def check(self) -> bool:
        if self._ping is None:
            return True
        if time.monotonic() - self._checked_at < self._ttl:
            return self._ok
        running = self._running
        if running is None or running.done() or running.get_loop() is not asyncio.get_running_loop():
            running = self._running = asyncio.ensure_future(self._probe())
        # shield: one poller giving up (a client disconnect) must not cancel the check the others wait for
        return await asyncio.shield(running)

    async def _probe(self) -> bool:
        assert self._ping is not None
        try:
            async with asyncio.timeout(self._timeout):
                await self._ping()
            ok = True
        except TimeoutError:
            ok = False
        except Exception as exc:
            if not is_unavailable(exc):
                log.warning("hitl: health check failed unexpectedly", exc_info=True)
            ok = False
        if ok != self._ok:
            log.warning("hitl: state is %s", "answering again" if ok else "not answering")
        self._ok, self._checked_at = ok, time.monotonic()
        return ok
