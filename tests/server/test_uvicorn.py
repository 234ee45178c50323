"""Through real HTTP: `hitl.asgi` under uvicorn (lifespan included), and `WebhookResolver` against a real
receiving server that checks the signature."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from hitl_streams import Resolved
from hitl_streams.server import Hitl, RetryPolicy, WebhookResolver, sign_webhook, verify_webhook

from .support import API, APPROVE_DENY, read_body, served


class Receiver:
    """A tiny engine endpoint: verifies the webhook signature, answers `statuses` in turn, then 200."""

    def __init__(self, secret: str, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self.arrived = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            del message
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if not verify_webhook(self.secret, body, headers.get("x-hitl-timestamp"), headers.get("x-hitl-signature")):
            self.rejected += 1
            status = 401
        elif self.statuses:
            status = self.statuses.pop(0)
        else:
            status = 200
            self.received.append(json.loads(body))
            self.arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_the_api_under_uvicorn_with_lifespan() -> None:
    receiver = Receiver("hook-secret")
    async with served(receiver) as engine_url:
        hitl = Hitl(resolver=WebhookResolver(engine_url, "hook-secret"), secret="api-secret")
        assert not hitl.running
        async with served(hitl.asgi) as url:
            assert hitl.running  # lifespan startup started the background work
            headers = {"authorization": "Bearer api-secret"}
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                health = await client.get("/healthz")
                assert health.json() == {"ok": True, "state": "memory"}
                body = {"token": "engine-token-1", "message": "Go?", "actions": APPROVE_DENY}
                created = await client.post(f"{API}/requests", json=body)
                assert created.status_code == 201
                request_id = created.json()["id"]
                result = await hitl.inbox.resolve(request_id, action_id="approve")
                await asyncio.wait_for(receiver.arrived.wait(), 30)
                too_big = await client.post(f"{API}/requests", content=b"x" * (2 << 20))
                assert (too_big.status_code, too_big.json()["error"]) == (
                    413,
                    "Request body too large (limit 1048576 bytes)",
                )
        assert not hitl.running  # lifespan shutdown stopped it
    assert receiver.rejected == 0
    [payload] = receiver.received
    assert payload["token"] == "engine-token-1"
    assert payload["result"]["type"] == "RESOLVED" and payload["result"]["id"] == request_id
    assert isinstance(result, Resolved)


async def test_webhook_failures_are_retried_and_410_stops() -> None:
    receiver = Receiver("k", statuses=[500, 503])
    async with served(receiver) as engine_url:
        hitl = Hitl(resolver=WebhookResolver(engine_url, "k"), retry=RetryPolicy(initial=0.01, jitter=0))
        async with hitl:
            body = {"token": "tk", "message": "m", "actions": APPROVE_DENY}
            from hitl_streams.server.wire import parse_create_request

            request_id = (await hitl.core.create_request(parse_create_request(body))).id
            await hitl.inbox.resolve(request_id, action_id="approve")
            await asyncio.wait_for(receiver.arrived.wait(), 30)
            for _ in range(3000):  # up to 30 s: a busy machine is slow, not wrong
                trail = [type(r.event).__name__ for r in await hitl.inbox.audit(request_id)]
                if trail[-1] == "ResumeSucceeded":
                    break
                await asyncio.sleep(0.01)
    assert trail[-6:] == [
        "ResumeAttempted",
        "ResumeFailed",
        "ResumeAttempted",
        "ResumeFailed",
        "ResumeAttempted",
        "ResumeSucceeded",
    ]

    gone = Receiver("k", statuses=[410])
    async with served(gone) as engine_url:
        hitl = Hitl(resolver=WebhookResolver(engine_url, "k"), retry=RetryPolicy(initial=0.01, jitter=0))
        async with hitl:
            request_id = (await hitl.core.create_request(parse_create_request(body))).id
            await hitl.inbox.resolve(request_id, action_id="approve")
            for _ in range(3000):  # up to 30 s: a busy machine is slow, not wrong
                events = [r.event for r in await hitl.inbox.audit(request_id)]
                if type(events[-1]).__name__ == "ResumeFailed":
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            events = [r.event for r in await hitl.inbox.audit(request_id)]
    assert [type(e).__name__ for e in events[-2:]] == ["ResumeAttempted", "ResumeFailed"]
    assert "410" in events[-1].error  # type: ignore[union-attr]


def test_webhook_signature_scheme() -> None:
    body = b'{"token":"t","result":{"type":"TIMED_OUT","id":"r","externalRef":""}}'
    signature = sign_webhook("key", 1_700_000_000, body)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    assert verify_webhook("key", body, "1700000000", signature, now=1_700_000_100)
    assert not verify_webhook("key", body + b" ", "1700000000", signature, now=1_700_000_100)  # body changed
    assert not verify_webhook("other", body, "1700000000", signature, now=1_700_000_100)  # wrong secret
    assert not verify_webhook("key", body, "1700000001", signature, now=1_700_000_100)  # timestamp changed
    assert not verify_webhook("key", body, "1700000000", signature, now=1_700_000_000 + 301)  # replayed late
    assert not verify_webhook("key", body, None, signature)
    assert not verify_webhook("key", body, "abc", signature)
    assert verify_webhook("key", body, str(int(time.time())), sign_webhook("key", int(time.time()), body))


def test_webhook_resolver_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="non-empty secret"):
        WebhookResolver("http://x", "")
    assert "hunter2" not in repr(WebhookResolver("http://engine", "hunter2"))
