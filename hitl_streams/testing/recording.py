"""`RecordingAdapter`: a channel adapter for tests that records every call and can be told to fail.

External ids are predictable: `send` returns `"{adapter id}/{request id}"`, `send_batch`
`"{adapter id}/batch/{batch id}"`, `notify` `"{adapter id}/note/{n}"` (n counts from 1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..results import HumanResult
from ..server.channels import BaseAdapter, BatchHumanRequest, HumanRequest, Notification

__all__ = ["RecordedCall", "RecordingAdapter"]


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One call: the method name and its arguments."""

    method: str
    args: tuple[Any, ...]


class RecordingAdapter(BaseAdapter):
    """Records `send`, `notify`, `update`, `can_send_batch`, `send_batch`, `update_batch` and `handle`.

    - `batch=True` makes it deliver batches as one message (`can_send_batch` is true).
    - `fail(method, times)` makes the next `times` calls of `method` raise `RuntimeError`.
    - `pause(method)` makes calls of `method` wait until the returned event is set (a slow channel).
    - `channel_key` with `app` (an ASGI callable) serves `channels/{channel_key}/...`.
    """

    def __init__(
        self,
        id: str = "recording",
        *,
        default_channel: str | None = None,
        batch: bool = False,
        channel_key: str | None = None,
        app: Any = None,
    ) -> None:
        self.id = id
        self.default_channel = default_channel
        self.channel_key = channel_key
        self.batch = batch
        self._app = app
        self.calls: list[RecordedCall] = []
        self._failures: dict[str, int] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._notes = 0

    def __repr__(self) -> str:
        return f"RecordingAdapter({self.id!r}, calls={len(self.calls)})"

    def fail(self, method: str, times: int = 1) -> None:
        """Make the next `times` calls of `method` raise."""
        self._failures[method] = self._failures.get(method, 0) + times

    def pause(self, method: str) -> asyncio.Event:
        """Make calls of `method` wait until the returned event is set."""
        gate = self._gates[method] = asyncio.Event()
        return gate

    async def _called(self, method: str, *args: Any) -> None:
        self.calls.append(RecordedCall(method, args))
        gate = self._gates.get(method)
        if gate is not None:
            await gate.wait()
        if self._failures.get(method, 0) > 0:
            self._failures[method] -= 1
            raise RuntimeError(f"{self.id}.{method} failed (as the test asked)")

    def of(self, method: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of `method`, in order."""
        return [call.args for call in self.calls if call.method == method]

    @property
    def sent(self) -> list[HumanRequest]:
        return [args[0] for args in self.of("send")]

    @property
    def notifications(self) -> list[Notification]:
        return [args[0] for args in self.of("notify")]

    @property
    def batches(self) -> list[BatchHumanRequest]:
        return [args[0] for args in self.of("send_batch")]

    @property
    def updates(self) -> list[tuple[str, HumanResult]]:
        return [(args[0], args[1]) for args in self.of("update")]

    @property
    def batch_updates(self) -> list[tuple[str, list[HumanResult]]]:
        return [(args[0], args[1]) for args in self.of("update_batch")]

    async def send(self, request: HumanRequest) -> str:
        await self._called("send", request)
        return f"{self.id}/{request.id}"

    async def notify(self, notification: Notification) -> str | None:
        await self._called("notify", notification)
        self._notes += 1
        return f"{self.id}/note/{self._notes}"

    async def update(self, external_id: str, result: HumanResult) -> None:
        await self._called("update", external_id, result)

    def can_send_batch(self, request: BatchHumanRequest) -> bool:
        self.calls.append(RecordedCall("can_send_batch", (request,)))
        return self.batch

    async def send_batch(self, request: BatchHumanRequest) -> str:
        await self._called("send_batch", request)
        return f"{self.id}/batch/{request.batch_id}"

    async def update_batch(self, external_id: str, results: Sequence[HumanResult]) -> None:
        await self._called("update_batch", external_id, list(results))

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(RecordedCall("handle", (scope,)))
        if self._app is None:
            await super().handle(scope, receive, send)
        else:
            await self._app(scope, receive, send)
