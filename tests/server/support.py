"""Shared test helpers: the API base path, sample actions, and a fake engine that records resumes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from hitl_streams.results import HumanResult
from hitl_streams.testing.redis_server import free_port

API = "/.well-known/hitl/v1"

APPROVE_DENY = [
    {"id": "approve", "fields": {"subject": {"kind": "text", "label": "Subject", "default": "Hi"}}},
    {"id": "deny", "fields": {"reason": {"kind": "text", "label": "Reason"}}},
]


@dataclass
class Resumed:
    """A fake engine: records every (token, result) it was resumed with; can fail on purpose."""

    calls: list[tuple[str, HumanResult]] = field(default_factory=list)
    failures: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, token: str, result: HumanResult) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("engine unavailable")
        self.calls.append((token, result))
        self.event.set()

    async def wait_for(self, count: int, within: float = 30.0) -> None:
        async def reached() -> None:
            while len(self.calls) < count:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(reached(), within)


class YieldingState:
    """A real state whose every coroutine first yields to the event loop, as a networked state does.

    Without it `InMemoryState` never suspends, so races (two creates, a resolve against a batch
    resolve) could not interleave in a test.
    """

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        target = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(target):
            return target

        async def call(*args: object, **kwargs: object) -> object:
            await asyncio.sleep(0)
            return await target(*args, **kwargs)

        return call


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request, as the fake servers of the tests read it (no limit)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@contextlib.asynccontextmanager
async def served(app: Any, *, lifespan: str = "on", **config: Any) -> AsyncIterator[str]:
    """Run `app` under a real uvicorn server on a free loopback port; yields its base URL (no trailing
    slash). `config`: more `uvicorn.Config` settings."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, **config)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        if task.done():
            task.result()  # the reason it stopped, if it raised
        task.cancel()
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
