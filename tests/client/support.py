"""Helpers for the client tests: primitives that record what reaches the server, and a second-process helper."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from hitl_streams.client import HitlRequest, HitlResponse
from hitl_streams.results import HumanResult
from hitl_streams.server import Hitl
from hitl_streams.server.inprocess import call_asgi


@dataclass
class Received:
    """One HTTP request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WirePrimitives:
    """Primitives that hand requests to `hitl.asgi` through a tap recording what the server receives.

    Counts `suspend` and `request` calls so tests can prove validation happened before either. Sleeps
    are instant (the wire tests do not race timers).
    """

    hitl: Hitl
    received: list[Received] = field(default_factory=list)
    requests: list[HitlRequest] = field(default_factory=list)
    suspends: int = 0
    sleeps: list[float] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def suspend(self) -> tuple[str, Awaitable[HumanResult]]:
        self.suspends += 1
        token = f"wire-token-{next(self._ids)}"
        return token, self.hitl.local_waits.register(token)

    def reattach(self, token: str) -> Awaitable[HumanResult]:
        return self.hitl.local_waits.register(token)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    async def request(self, request: HitlRequest) -> HitlResponse:
        self.requests.append(request)
        return await call_asgi(self._tap, request)

    async def _tap(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        chunks: list[bytes] = []

        async def tapped() -> MutableMapping[str, Any]:
            message: MutableMapping[str, Any] = await receive()
            chunks.append(message.get("body", b""))
            return message

        try:
            await self.hitl.asgi(scope, tapped, send)
        finally:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.received.append(Received(scope["method"], scope["path"], headers, b"".join(chunks)))

    def bodies(self, path_end: str) -> list[Any]:
        return [r.json for r in self.received if r.path.endswith(path_end)]
