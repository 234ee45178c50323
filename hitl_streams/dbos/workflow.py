"""The workflow side of the DBOS binding: `dbos_hitl_client()` inside a DBOS workflow.

Primitives:
- `suspend`: the topic is `hitl-wait-N`, N a step id reserved for the wait (`DBOS.reserve_step`, so
  deterministic across replays and unique in the workflow); the token is `{"workflowId","topic"}` and
  the awaitable is `DBOS.recv_async(topic)` (a durable receive: a message that arrived earlier, even
  while the process was down, is picked up; after a restart the recovered workflow waits again).
- `sleep`: `DBOS.sleep_async` (durable: a recovered workflow sleeps only what is left).
- `now`: the `hitl-now` step, so a recovered workflow sees the instant its first run recorded.
- `request`: the `hitl-request` step (HTTP with httpx, retried by DBOS with backoff).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from dbos import DBOS

from .._engine_http import send_hitl_request
from .._lazy import Deferred
from ..client import HitlClient, HitlRequest, HitlResponse, create_hitl_client
from ..errors import HitlError, ValidationError
from .token import decode_dbos_token, encode_dbos_token

__all__ = ["DBOSPrimitives", "dbos_hitl_client"]

RECV_TIMEOUT_SECONDS = 365 * 24 * 3600.0
"""How long one `recv` waits before it is renewed (the client's own timeout decides when to stop)."""


@DBOS.step(name="hitl-now")
def _now_step() -> str:
    return datetime.now(UTC).isoformat()


@DBOS.step(name="hitl-request", retries_allowed=True, interval_seconds=1.0, backoff_rate=2.0, max_attempts=12)
async def _request_step(request: dict[str, Any]) -> dict[str, Any]:
    # A relative URL and a missing authorization header take the process's HITL_URL and HITL_SECRET.
    return await send_hitl_request(
        request, base_url=os.environ.get("HITL_URL"), secret=os.environ.get("HITL_SECRET"), request_timeout=30.0
    )


class DBOSPrimitives:
    """`Primitives` on DBOS workflow APIs, for `create_hitl_client` (use `dbos_hitl_client`)."""

    def __init__(self, workflow_id: str, *, recv_timeout: float = RECV_TIMEOUT_SECONDS) -> None:
        self._workflow_id = workflow_id
        self._recv_timeout = recv_timeout

    def suspend(self) -> tuple[str, Awaitable[Any]]:
        # The topic is numbered by a step id DBOS draws for it: the same on every replay, and never shared
        # by two waits of the workflow, however many clients it creates.
        topic = f"hitl-wait-{DBOS.reserve_step().step_id}"
        return encode_dbos_token(self._workflow_id, topic), Deferred(lambda: self._receive(topic))

    def reattach(self, token: str) -> Awaitable[Any]:
        """The wait of a token minted earlier in this workflow (a `Pending` stored and reloaded)."""
        try:
            workflow_id, topic = decode_dbos_token(token)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        if workflow_id != self._workflow_id:
            raise ValidationError(f"this Pending belongs to workflow {workflow_id!r}, not to this one")
        return Deferred(lambda: self._receive(topic))

    async def _receive(self, topic: str) -> Any:
        while True:
            message = await DBOS.recv_async(topic, timeout_seconds=self._recv_timeout)
            if message is not None:
                return message

    async def sleep(self, seconds: float) -> None:
        await DBOS.sleep_async(seconds)

    def now(self) -> datetime:
        return datetime.fromisoformat(_now_step())

    async def request(self, request: HitlRequest) -> HitlResponse:
        return msgspec.convert(await _request_step(msgspec.to_builtins(request)), HitlResponse)


def dbos_hitl_client(
    *, url: str | Callable[[], str] | None = None, secret: str | Callable[[], str] | None = None
) -> HitlClient:
    """A `HitlClient` for the current DBOS workflow (call it inside the workflow function).

    `url` and `secret` default to `HITL_URL` and `HITL_SECRET`, read when a request is made.
    """
    workflow_id = DBOS.workflow_id
    if workflow_id is None:
        raise HitlError("dbos_hitl_client() must be called inside a DBOS workflow")
    return create_hitl_client(DBOSPrimitives(workflow_id), url=url, secret=secret)
