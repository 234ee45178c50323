"""State methods beyond the State protocol that spare the server Redis round trips. `StreamState` has
them; `Core` uses them when a state does (checked once) and the protocol's methods otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..history.events import RequestDelivered, RequestRedelivered
from ..records import HumanRequestRecord, NewHumanRequest
from ..results import HumanResult

__all__ = ["DeliveryRecorder", "ResolvesFrom"]


@runtime_checkable
class DeliveryRecorder(Protocol):
    """Takes a new request's delivery lease in the write that creates it, and stores a delivery's
    external id and records its audit event in one atomic write (the same two events as `set_external_id`
    then `record`), giving the delivery lease back in it too."""

    async def create_leased(self, record: NewHumanRequest, lease: str, token: str, ttl_ms: int) -> None: ...

    async def record_delivery(
        self,
        request_id: str,
        external_id: str,
        plugin_id: str | None,
        delivered: RequestDelivered | RequestRedelivered,
        lease: tuple[str, str] | None = None,
    ) -> None: ...


@runtime_checkable
class ResolvesFrom(Protocol):
    """Resolves a pending request with a result made from its record, without a read of its own first."""

    async def resolve_from(
        self, request_id: str, decide: Callable[[HumanRequestRecord], HumanResult]
    ) -> tuple[HumanRequestRecord, HumanResult | None]: ...
