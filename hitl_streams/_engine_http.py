"""The HTTP call behind the engines' durable `request` step (a Temporal activity, a DBOS step).

It runs on the worker, outside workflow code, so deployment settings are read here, not recorded in
the workflow's history: a relative request URL (the workflow gave no `url`) is joined to the worker's
`HITL_URL`, and the worker's `HITL_SECRET` becomes the `authorization` header when the workflow did
not set one. Answers a retry can fix (408, 425, 429, 5xx) and network errors raise, so the engine
retries the step with its backoff; any other answer is returned for the client to judge.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .errors import HitlError

__all__ = ["RetryableResponseError", "Setting", "read_setting", "send_hitl_request"]

Setting = str | Callable[[], str | None] | None
"""A worker setting: a value, a function read at each call, or `None` for the environment variable."""

RETRYABLE_STATUSES = frozenset({408, 425, 429})


class RetryableResponseError(HitlError):
    """The hitl server answered with a status a later attempt can succeed on."""


def read_setting(value: Setting, env: str) -> str | None:
    """The setting's current value; `None` falls back to the environment variable `env`."""
    if callable(value):
        return value() or None
    if value is None:
        return os.environ.get(env) or None
    return value or None


def resolve_url(url: str, base_url: str | None) -> str:
    """`url` itself when absolute, else joined to the worker's base URL."""
    if not url.startswith("/"):
        return url
    if not base_url:
        raise HitlError(
            f"hitl: the request URL {url!r} is relative: set HITL_URL on the worker "
            "(or pass url= to the client or to the worker's activities/steps)"
        )
    return base_url.rstrip("/") + url


async def send_hitl_request(
    request: Mapping[str, Any], *, base_url: str | None, secret: str | None, request_timeout: float
) -> dict[str, Any]:
    """Send `{url, method, headers, body}`; returns `{status, ok, body}` or raises for a retry."""
    import httpx

    method = str(request["method"])
    url = resolve_url(str(request["url"]), base_url)
    headers = {str(k): str(v) for k, v in dict(request.get("headers") or {}).items()}
    if secret and not any(name.lower() == "authorization" for name in headers):
        headers["authorization"] = f"Bearer {secret}"
    body = str(request.get("body") or "")
    async with httpx.AsyncClient(timeout=request_timeout) as client:
        response = await client.request(method, url, headers=headers, content=body.encode())
    if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
        raise RetryableResponseError(
            f"hitl: {method} {url} answered {response.status_code}: {response.text[:500]} (will be retried)"
        )
    return {"status": response.status_code, "ok": response.is_success, "body": response.text}
