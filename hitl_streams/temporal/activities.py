"""The activity that makes the hitl client's HTTP calls from a Temporal worker.

Register `ACTIVITIES` (or `hitl_activities(url=..., secret=...)`) on the worker that runs your hitl
workflows. The activity reads the server URL and the bearer secret on the worker (`HITL_URL`,
`HITL_SECRET`) when the workflow does not give them, so the secret never enters workflow history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from .._engine_http import Setting, read_setting, send_hitl_request

__all__ = ["ACTIVITIES", "HITL_REQUEST_ACTIVITY", "hitl_activities"]

HITL_REQUEST_ACTIVITY = "hitl-request"


def hitl_activities(
    *, url: Setting = None, secret: Setting = None, timeout: float = 30.0
) -> Sequence[Callable[..., Any]]:
    """The hitl activities, with the worker's server URL and secret (default: `HITL_URL`, `HITL_SECRET`).

    `url` and `secret` may be values or functions read on each call. Answers 408/425/429/5xx and
    network errors fail the attempt, which Temporal retries with the activity's retry policy.
    """

    @activity.defn(name=HITL_REQUEST_ACTIVITY)
    async def hitl_request(request: dict[str, Any]) -> dict[str, Any]:
        return await send_hitl_request(
            request,
            base_url=read_setting(url, "HITL_URL"),
            secret=read_setting(secret, "HITL_SECRET"),
            request_timeout=timeout,
        )

    return [hitl_request]


ACTIVITIES: Sequence[Callable[..., Any]] = hitl_activities()
"""The hitl activities configured from the worker's environment (`HITL_URL`, `HITL_SECRET`)."""
