"""What a workflow engine gives the client (REF §7.1): a suspension, a durable timer and a durable HTTP step.

`HitlRequest` and `HitlResponse` are plain data (msgspec Structs of strings and ints), so an engine can
pass them across a step boundary and record them in its history.

Optional extras a binding may provide, looked up with `getattr` so the Protocol stays the three methods
SPEC §11 names:
- `now() -> datetime` (timezone-aware): the anchor of wall-clock reminder schedules, and the measure of
  elapsed time while waiting. Engines return a deterministic, replay-safe time (REF §10.1 #7); without it
  the client anchors on `datetime.now(UTC)` and counts the sleeps it asked for.
- `reattach(token) -> Awaitable`: the suspension of a token minted earlier (by another client object or
  another process), so that `wait_for_human(pending)` works on a `Pending` that was stored and reloaded.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

__all__ = ["HitlRequest", "HitlResponse", "Primitives", "Reattaches", "TellsTime"]


class HitlRequest(msgspec.Struct, frozen=True):
    """One HTTP call to the server: always a POST of a JSON body."""

    url: str
    method: str
    headers: dict[str, str]
    body: str


class HitlResponse(msgspec.Struct, frozen=True):
    """The server's answer: `ok` is true for a 2xx status."""

    status: int
    ok: bool
    body: str


@runtime_checkable
class Primitives(Protocol):
    """The three things a workflow engine must provide to the client."""

    def suspend(self) -> tuple[str, Awaitable[Any]]:
        """A fresh resume token and the awaitable that completes with the result the server resumes it with.

        The token must be stable across replays of the same call site (engines) and globally unique.
        """
        ...

    async def sleep(self, seconds: float) -> None:
        """A durable timer."""
        ...

    async def request(self, request: HitlRequest) -> HitlResponse:
        """A durable (memoized) HTTP call."""
        ...


@runtime_checkable
class TellsTime(Protocol):
    """Optional: a deterministic clock for schedule anchors."""

    def now(self) -> datetime: ...


@runtime_checkable
class Reattaches(Protocol):
    """Optional: the suspension of a token minted earlier, for waits on a reloaded `Pending`."""

    def reattach(self, token: str) -> Awaitable[Any]: ...
