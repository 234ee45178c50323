"""`WebhookResolver` reuses one HTTP client (a bounded pool) for every resume, `serve` closes it on the way
out, and each delivery carries its idempotency key in a header and in the signed body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from hitl_streams.results import Resolved
from hitl_streams.server import WebhookResolver, verify_webhook
from hitl_streams.server.serve import ServeOptions, serve_resolver

from .support import read_body, served

SECRET = "s3cret"


@dataclass
class Receiver:
    """An engine's webhook endpoint: records the peer address, headers and body of every POST."""

    seen: list[tuple[tuple[str, int], dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append((tuple(scope["client"]), headers, body))  # type: ignore[arg-type]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


RESULT = Resolved(id="r1", action_id="approve", external_ref="", feedbacks={})


async def test_every_resume_goes_through_one_client_and_connection() -> None:
    receiver = Receiver()
    async with served(receiver) as base:
        resolver = WebhookResolver(f"{base}/resume", SECRET)
        try:
            for n in range(3):
                await resolver.resolve(f"tok{n}", RESULT, idempotency_key=f"r{n}:1-0")
        finally:
            await resolver.aclose()
    peers = {peer for peer, _, _ in receiver.seen}
    assert len(receiver.seen) == 3 and len(peers) == 1  # one kept-alive connection, not one per resume


async def test_the_idempotency_key_is_a_header_and_a_signed_body_field() -> None:
    receiver = Receiver()
    async with served(receiver) as base:
        resolver = WebhookResolver(f"{base}/resume", SECRET)
        try:
            await resolver.resolve("tok", RESULT, idempotency_key="r1:1700000000000-0")
            await resolver.resolve("tok", RESULT, idempotency_key="r1:1700000000000-0")
            await resolver.resolve("old", RESULT)  # called by hand without a key: the body has none
        finally:
            await resolver.aclose()
    (_, first, body1), (_, second, body2), (_, third, body3) = receiver.seen
    assert first["idempotency-key"] == second["idempotency-key"] == "r1:1700000000000-0"
    assert (
        msgspec.json.decode(body1)["idempotencyKey"]
        == msgspec.json.decode(body2)["idempotencyKey"]
        == first["idempotency-key"]
    )
    assert verify_webhook(SECRET, body1, first["x-hitl-timestamp"], first["x-hitl-signature"])
    assert "idempotency-key" not in third and "idempotencyKey" not in msgspec.json.decode(body3)


async def test_serve_builds_one_bounded_client_and_closes_it() -> None:
    options = ServeOptions(webhook_url="http://127.0.0.1:9/resume", webhook_secret=SECRET)
    async with serve_resolver(options) as resolver:
        assert isinstance(resolver, WebhookResolver)
        client = resolver.client
        assert resolver.client is client
        assert client._transport._pool._max_connections == 64  # type: ignore[attr-defined]
    assert client.is_closed
    async with serve_resolver(ServeOptions()) as nothing:
        assert nothing is None
