"""Fault test (issue #12): Redis shut down and started again on its AOF, answering `LOADING` for a while,
under a create/decide load on a server that resumes workflows through a webhook receiver.

After the fault: every acknowledged create is in the state, every acknowledged decision reached the
receiver exactly once (signature valid, one idempotency key per decision), `verify` is clean, and the
same server (no restart) serves again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from hitl_streams import StreamState
from hitl_streams.server import Hitl, RetryPolicy, WebhookResolver, verify_webhook
from hitl_streams.streams.connect import connect
from hitl_streams.testing._servers import ServerProcess, resp_command

from .support import API, read_body, served

pytestmark = pytest.mark.slow

SECRET = "webhook-secret"
# AOF fsync'd on every write; on restart each key of the filler takes 50 µs to load and the server
# answers other clients (`-LOADING`) every KiB of the file: about a second of LOADING.
AOF_LOADING_SLOWLY = [
    "--appendonly", "yes", "--appendfsync", "always", "--save", "",
    "--enable-debug-command", "local",
    "--key-load-delay", "50", "--loading-process-events-interval-bytes", "1024",
]  # fmt: skip


@dataclass
class Receiver:
    """The engine: checks each webhook's signature, records (token, idempotency key) of every delivery."""

    deliveries: list[tuple[str, str]] = field(default_factory=list)
    bad: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if verify_webhook(SECRET, body, headers.get("x-hitl-timestamp"), headers.get("x-hitl-signature")):
            payload = msgspec.json.decode(body)
            assert payload["idempotencyKey"] == headers["idempotency-key"]
            self.deliveries.append((payload["token"], payload["idempotencyKey"]))
            status = 200
        else:
            self.bad += 1
            status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Load:
    """Workers creating requests and deciding them (timeout route or inbox resolve) as fast as they can."""

    http: httpx.AsyncClient
    hitl: Hitl
    created: dict[str, str] = field(default_factory=dict)
    """token -> request id, for every create answered 201."""
    decided: set[str] = field(default_factory=set)
    """Tokens whose decision was acknowledged (timeout 200, or resolve returned)."""
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    running: bool = True
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def worker(self) -> None:
        while self.running:
            token = f"tok-{next(self._numbers)}-{uuid.uuid4().hex[:6]}"
            body = {"token": token, "message": "Ship it?", "actions": [{"id": "approve"}]}
            try:
                response = await self.http.post(f"{API}/requests", json=body)
            except Exception as exc:
                self.statuses[f"create:{type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)
                continue
            self.statuses[f"create:{response.status_code}"] += 1
            if response.status_code != 201:
                await asyncio.sleep(0.05)
                continue
            request_id = response.json()["id"]
            self.created[token] = request_id
            await self.decide(token, request_id)

    async def decide(self, token: str, request_id: str) -> None:
        try:
            if len(self.created) % 2:
                response = await self.http.post(f"{API}/requests/{request_id}/timeout", json={})
                self.statuses[f"timeout:{response.status_code}"] += 1
                if response.status_code == 200:
                    self.decided.add(token)
            else:
                await self.hitl.inbox.resolve(request_id, action_id="approve")
                self.statuses["resolve:ok"] += 1
                self.decided.add(token)
        except Exception as exc:
            self.statuses[f"decide:{type(exc).__name__}"] += 1


def _persistence(port: int) -> dict[str, str]:
    raw = resp_command(port, "INFO", "persistence", timeout=5).decode()
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)


def _fill(server: ServerProcess) -> None:
    """20,000 filler keys in the AOF's base file, so that loading it takes a while."""
    resp_command(server.port, "DEBUG", "POPULATE", "20000", "filler", timeout=10)
    resp_command(server.port, "BGREWRITEAOF")
    deadline = time.monotonic() + 30
    while _persistence(server.port).get("aof_rewrite_in_progress") != "0" or _persistence(server.port).get(
        "aof_rewrite_scheduled"
    ) not in ("0", None):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _shutdown_and_restart(server: ServerProcess) -> None:
    with contextlib.suppress(OSError):  # the server closes the connection instead of answering
        resp_command(server.port, "SHUTDOWN")
    assert server.proc is not None
    server.proc.wait(timeout=30)
    server.restart(timeout=60)  # returns once PING answers PONG, i.e. after LOADING


async def test_redis_restart_under_load_loses_nothing_and_delivers_once(table_name: str) -> None:
    server = ServerProcess(AOF_LOADING_SLOWLY, name="restart").start()
    client = connect(server.url)
    try:
        await asyncio.to_thread(_fill, server)
        state = StreamState(client, table_name=table_name)
        receiver = Receiver()
        async with served(receiver) as base:
            resolver = WebhookResolver(f"{base}/resume", SECRET)
            hitl = Hitl(
                state=state,
                resolver=resolver,
                secret="",
                retry=RetryPolicy(initial=0.05, maximum=0.5),
                resume_claim_idle_ms=2000,
            )
            transport = httpx.ASGITransport(app=hitl.asgi, raise_app_exceptions=False)
            async with hitl, httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as http:
                load = Load(http, hitl)
                workers = [asyncio.create_task(load.worker()) for _ in range(8)]
                await asyncio.sleep(1.0)
                before = len(load.decided)
                await asyncio.to_thread(_shutdown_and_restart, server)
                restarted = len(load.created)
                await asyncio.sleep(1.5)
                load.running = False
                await asyncio.gather(*workers)
                assert before > 0 and len(load.created) > restarted, load.statuses  # recovered, no restart
                # Redis away is "retry later" (503), never "our bug" (500).
                assert not [s for s in load.statuses if s.endswith(":500")], load.statuses

                # Every acknowledged decision reaches the engine.
                deadline = time.monotonic() + 30
                while not load.decided <= {token for token, _ in receiver.deliveries}:
                    assert time.monotonic() < deadline, "acknowledged decisions not delivered"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)  # a late duplicate would show up here
            await resolver.aclose()

        # Nothing acknowledged is lost; nothing is delivered twice; the projection matches history.
        for token, request_id in load.created.items():
            record = await state.get(request_id)
            assert record is not None and record.token == token
        per_token = collections.Counter(token for token, _ in receiver.deliveries)
        assert [t for t, n in per_token.items() if n > 1] == []
        assert len({key for _, key in receiver.deliveries}) == len(receiver.deliveries)
        assert set(per_token) <= set(load.created)
        assert receiver.bad == 0
        report = await state.verify()
        assert report.clean, report
    finally:
        await client.aclose()
        server.stop()
