"""Resolvers resume the workflow waiting on a resume token: `await resolver.resolve(token, result)`.

- `CallbackResolver(fn)`: an async function, for in-process engines (plain asyncio, agent loops) and tests.
- `WebhookResolver(url, secret)`: POSTs the result to an HTTP endpoint of the engine.

Idempotency key: a resolver whose `resolve` also takes a keyword `idempotency_key` (or `**kwargs`) is
given one, a string derived from the decision itself (the request id and the stream id of its decision
event): every delivery of one decision carries the same key, so an engine can drop a repeat (a server
that dies between the engine's answer and recording it resumes the decision again after a restart).
Resolvers written as `resolve(token, result)` keep working and are called as before.

Webhook signature scheme (version `v1`)
---------------------------------------
The request is `POST url` with `content-type: application/json` and the body
`{"token": "<resume token>", "result": <HumanResult JSON>, "idempotencyKey": "<key>"}`, plus three headers:

- `x-hitl-timestamp`: the send time, in whole seconds since the Unix epoch;
- `x-hitl-signature`: `v1=` followed by the lowercase hex HMAC-SHA256, keyed with the shared secret
  (UTF-8), of the bytes `"{timestamp}." + body`;
- `Idempotency-Key`: the same key as the body's `idempotencyKey` (identical on every delivery of one
  decision: a receiver that has seen it answers 2xx again and does nothing).

A receiver recomputes the HMAC over the raw body it received, compares it in constant time, and rejects
timestamps more than a few minutes away from its clock (replay protection); `verify_webhook` does all
three. Any 2xx answer means "resumed"; 410 Gone means "this wait no longer exists" and stops the
retries; anything else (or a network error) is retried with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
    "accepts_idempotency_key",
    "sign_webhook",
    "verify_webhook",
]

SIGNATURE_HEADER = "x-hitl-signature"
TIMESTAMP_HEADER = "x-hitl-timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@runtime_checkable
class Resolver(Protocol):
    """Resumes the workflow waiting on `token` with `result`. Raise to have the attempt retried.

    `resolve` may also take a keyword-only `idempotency_key: str | None = None`: it is then passed the
    decision's key (see the module docstring).
    """

    async def resolve(self, token: str, result: HumanResult) -> None: ...


def accepts_idempotency_key(fn: Callable[..., Any]) -> bool:
    """True iff `fn` can be called with a keyword `idempotency_key` (named, or through `**kwargs`)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "idempotency_key" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


class ResumeRejected(HitlError):
    """Raised by a resolver when the wait can never be resumed (it no longer exists): stop retrying."""


class CallbackResolver:
    """Calls an async function `fn(token, result)`; `fn(token, result, *, idempotency_key)` if it takes one."""

    def __init__(self, fn: Callable[..., Awaitable[None]]) -> None:
        self._fn = fn
        self._keyed = accepts_idempotency_key(fn)

    async def resolve(self, token: str, result: HumanResult, *, idempotency_key: str | None = None) -> None:
        if self._keyed:
            await self._fn(token, result, idempotency_key=idempotency_key)
        else:
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


class _Payload(msgspec.Struct, rename="camel", omit_defaults=True):
    token: str
    result: HumanResult
    idempotency_key: str | None = None


class WebhookResolver:
    """POSTs `{token, result, idempotencyKey}` to `url`, signed with `secret` (the scheme: module docstring).

    Needs `httpx` (the `server` or `webhook` extra). Every call goes through one `httpx.AsyncClient`
    (connections are reused): pass your own as `client` (you close it), or let the resolver make one on
    first use with a bounded pool (`max_connections`); `aclose()` closes that one.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        max_connections: int = 64,
    ) -> None:
        if not secret:
            raise ValueError("WebhookResolver needs a non-empty secret")
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._client = client
        self._owns_client = client is None
        self._max_connections = max_connections

    def __repr__(self) -> str:
        return f"WebhookResolver({self.url!r})"

    @property
    def client(self) -> httpx.AsyncClient:
        """The one HTTP client every call uses (made on first use unless one was given)."""
        if self._client is None or (self._owns_client and self._client.is_closed):
            self._client = _bounded_client(self._timeout, self._max_connections)
        return self._client

    async def aclose(self) -> None:
        """Close the client this resolver made (a client passed in is left to its owner)."""
        client, owned = self._client, self._owns_client
        if owned:
            self._client = None
        if owned and client is not None:
            await client.aclose()

    async def resolve(self, token: str, result: HumanResult, *, idempotency_key: str | None = None) -> None:
        body = msgspec.json.encode(_Payload(token=token, result=result, idempotency_key=idempotency_key))
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_webhook(self._secret, timestamp, body),
        }
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        response = await self.client.post(self.url, content=body, headers=headers, timeout=self._timeout)
        if response.status_code == 410:
            raise ResumeRejected(f"{self.url} answered 410 Gone")
        if not response.is_success:
            raise HitlError(f"{self.url} answered {response.status_code}")


def _bounded_client(timeout: float, max_connections: int) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` with a bounded pool (kept-alive connections reused across resumes)."""
    import httpx

    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
