"""Resolvers resume the workflow waiting on a resume token: `await resolver.resolve(token, result)`.

- `CallbackResolver(fn)`: an async function, for in-process engines (plain asyncio, agent loops) and tests.
- `WebhookResolver(url, secret)`: POSTs the result to an HTTP endpoint of the engine.

Webhook signature scheme (version `v1`)
---------------------------------------
The request is `POST url` with `content-type: application/json` and the body
`{"token": "<resume token>", "result": <HumanResult JSON>}`, plus two headers:

- `x-hitl-timestamp`: the send time, in whole seconds since the Unix epoch;
- `x-hitl-signature`: `v1=` followed by the lowercase hex HMAC-SHA256, keyed with the shared secret
  (UTF-8), of the bytes `"{timestamp}." + body`.

A receiver recomputes the HMAC over the raw body it received, compares it in constant time, and rejects
timestamps more than a few minutes away from its clock (replay protection); `verify_webhook` does all
three. Any 2xx answer means "resumed"; 410 Gone means "this wait no longer exists" and stops the
retries; anything else (or a network error) is retried with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from ..errors import HitlError
from ..results import HumanResult

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CallbackResolver",
    "Resolver",
    "ResumeRejected",
    "WebhookResolver",
    "sign_webhook",
    "verify_webhook",
]

SIGNATURE_HEADER = "x-hitl-signature"
TIMESTAMP_HEADER = "x-hitl-timestamp"


@runtime_checkable
class Resolver(Protocol):
    """Resumes the workflow waiting on `token` with `result`. Raise to have the attempt retried."""

    async def resolve(self, token: str, result: HumanResult) -> None: ...


class ResumeRejected(HitlError):
    """Raised by a resolver when the wait can never be resumed (it no longer exists): stop retrying."""


class CallbackResolver:
    """Calls an async function `fn(token, result)`."""

    def __init__(self, fn: Callable[[str, HumanResult], Awaitable[None]]) -> None:
        self._fn = fn

    async def resolve(self, token: str, result: HumanResult) -> None:
        await self._fn(token, result)


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The `x-hitl-signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """True iff `signature` signs `body` at `timestamp` and the timestamp is within `tolerance` seconds.

    It proves who signed the body and when, not that this is the first delivery: a captured POST verifies
    again for as long as its timestamp is within `tolerance`, and one decision may be delivered more than
    once (a retry after a lost reply, a crash between the engine's 2xx and recording it). Receivers drop
    repeats by the decision's idempotency key (`Idempotency-Key` header, `idempotencyKey` in the body),
    remembering processed keys for at least `tolerance` seconds, and answer a repeat with 2xx."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    sent = int(timestamp)
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign_webhook(secret, sent, body), signature)


class _Payload(msgspec.Struct):
    token: str
    result: HumanResult


class WebhookResolver:
    """POSTs `{token, result}` to `url`, signed with `secret` (see the module docstring for the scheme).

    Needs `httpx` (the `server` or `webhook` extra). Pass `client` to reuse your own `httpx.AsyncClient`.
    """

    def __init__(
        self, url: str, secret: str, *, timeout: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        if not secret:
            raise ValueError("WebhookResolver needs a non-empty secret")
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"WebhookResolver({self.url!r})"

    async def resolve(self, token: str, result: HumanResult) -> None:
        import httpx

        body = msgspec.json.encode(_Payload(token=token, result=result))
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_webhook(self._secret, timestamp, body),
        }
        if self._client is not None:
            response = await self._client.post(self.url, content=body, headers=headers, timeout=self._timeout)
        else:
            async with httpx.AsyncClient() as client:
                response = await client.post(self.url, content=body, headers=headers, timeout=self._timeout)
        if response.status_code == 410:
            raise ResumeRejected(f"{self.url} answered 410 Gone")
        if not response.is_success:
            raise HitlError(f"{self.url} answered {response.status_code}")
