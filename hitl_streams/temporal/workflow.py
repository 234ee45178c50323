"""The workflow side of the Temporal binding: `temporal_hitl_client()` inside a workflow.

Primitives (REF §7.2, wire-compatible with the TypeScript binding):
- `suspend`: the wait token is `hitl-wait-N` (a per-execution counter, stable across replays) and the
  resume token the JSON `{"workflowId","waitToken"}`; the awaitable waits until the `hitl-resume`
  signal brought a payload for that wait token. Signals that arrive before the wait are kept, and the
  first payload per wait token wins (a resolver retrying a delivery changes nothing).
- `sleep`: `workflow.sleep` (a durable timer); `now`: `workflow.now()` (deterministic).
- `request`: the `hitl-request` activity (`ACTIVITIES`), run on the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from temporalio import workflow
from temporalio.common import RetryPolicy

from .._lazy import Deferred
from ..client import HitlClient, HitlRequest, HitlResponse, create_hitl_client
from ..errors import HitlError, ValidationError
from .activities import HITL_REQUEST_ACTIVITY
from .token import HITL_RESUME_SIGNAL, decode_hitl_token, encode_hitl_token

__all__ = ["TemporalPrimitives", "temporal_hitl_client"]

DEFAULT_ACTIVITY_TIMEOUT = timedelta(seconds=60)  # above the activity's own 30 s HTTP timeout


class _ResumeSignal:
    """The `hitl-resume` handler of one workflow execution: the payload received per wait token,
    and the wait counter (shared by every client of the execution, so tokens never repeat)."""

    def __init__(self) -> None:
        self.payloads: dict[str, Any] = {}
        self.waits = 0

    def next_wait_token(self) -> str:
        self.waits += 1
        return f"hitl-wait-{self.waits}"

    def __call__(self, message: Any) -> None:
        wait_token = message.get("waitToken") if isinstance(message, dict) else None
        if not isinstance(wait_token, str):
            workflow.logger.warning("hitl: ignored a %s signal without a waitToken", HITL_RESUME_SIGNAL)
            return
        # The first delivery wins: a retried or duplicated resume never replaces a decision.
        self.payloads.setdefault(wait_token, message.get("payload"))


class TemporalPrimitives:
    """`Primitives` on Temporal workflow APIs, for `create_hitl_client` (use `temporal_hitl_client`)."""

    def __init__(
        self,
        signal: _ResumeSignal,
        *,
        start_to_close_timeout: timedelta = DEFAULT_ACTIVITY_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._signal = signal
        self._start_to_close_timeout = start_to_close_timeout
        self._retry_policy = retry_policy

    def suspend(self) -> tuple[str, Awaitable[Any]]:
        wait_token = self._signal.next_wait_token()
        return encode_hitl_token(workflow.info().workflow_id, wait_token), Deferred(lambda: self._wait(wait_token))

    def reattach(self, token: str) -> Awaitable[Any]:
        """The wait of a token minted earlier in this execution (a `Pending` stored and reloaded)."""
        try:
            workflow_id, wait_token = decode_hitl_token(token)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        if workflow_id != workflow.info().workflow_id:
            raise ValidationError(f"this Pending belongs to workflow {workflow_id!r}, not to this one")
        return Deferred(lambda: self._wait(wait_token))

    async def _wait(self, wait_token: str) -> Any:
        payloads = self._signal.payloads
        await workflow.wait_condition(lambda: wait_token in payloads)
        return payloads[wait_token]

    async def sleep(self, seconds: float) -> None:
        await workflow.sleep(seconds)

    def now(self) -> datetime:
        return workflow.now()

    async def request(self, request: HitlRequest) -> HitlResponse:
        answer = await workflow.execute_activity(
            HITL_REQUEST_ACTIVITY,
            msgspec.to_builtins(request),
            start_to_close_timeout=self._start_to_close_timeout,
            retry_policy=self._retry_policy,
            result_type=dict,
        )
        return msgspec.convert(answer, HitlResponse)


def temporal_hitl_client(
    *,
    url: str | None = None,
    secret: str | None = None,
    start_to_close_timeout: timedelta = DEFAULT_ACTIVITY_TIMEOUT,
    retry_policy: RetryPolicy | None = None,
) -> HitlClient:
    """A `HitlClient` for the current Temporal workflow execution (call it inside the workflow).

    Leave `url` and `secret` unset to have the worker's `hitl-request` activity use its own `HITL_URL`
    and `HITL_SECRET`: a `secret` given here is part of the activity's input, so it is recorded in
    the workflow history. Register `ACTIVITIES` on the worker. Calling it again in the same execution
    is fine: the clients share the signal handler and the wait counter.
    """
    if not workflow.in_workflow():
        raise HitlError("temporal_hitl_client() must be called inside a Temporal workflow")
    existing = workflow.get_signal_handler(HITL_RESUME_SIGNAL)
    if existing is not None and not isinstance(existing, _ResumeSignal):
        raise HitlError(f"the workflow already handles the {HITL_RESUME_SIGNAL!r} signal itself")
    signal = existing if existing is not None else _ResumeSignal()
    if existing is None:
        workflow.set_signal_handler(HITL_RESUME_SIGNAL, signal)
    primitives = TemporalPrimitives(signal, start_to_close_timeout=start_to_close_timeout, retry_policy=retry_policy)
    # Without a url the request URL is the path alone ("/" + base path), which the activity joins to the
    # worker's HITL_URL; without a secret the activity adds the worker's HITL_SECRET. Neither environment
    # variable is read in workflow code (not deterministic, and the secret would land in the history).
    return create_hitl_client(
        primitives, url=url if url is not None else "/", secret=secret if secret is not None else _no_secret
    )


def _no_secret() -> str:
    return ""
