"""`hitl-streams serve` with the reliability options, as a user runs it: `--wait-replicas` on a primary
with a real replica, `--resume-claim-idle`, a webhook receiver that gets the idempotency key, and a clean
Ctrl-C that leaves no consumer behind in the resume group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from hitl_streams.history.keys import Keys
from hitl_streams.server import verify_webhook
from hitl_streams.testing._servers import ServerProcess, resp_command

from .support import API, free_port, read_body, served

CLI = str(Path(sys.executable).parent / "hitl-streams")
SECRET = "webhook-secret"
TABLE = "serve_rel.human_requests"


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    primary = ServerProcess(["--save", "", "--repl-diskless-sync-delay", "0"], name="primary").start()
    replica = ServerProcess(["--save", ""], name="replica").start()
    try:
        resp_command(replica.port, "REPLICAOF", "127.0.0.1", str(primary.port))
        deadline = time.monotonic() + 15
        while b"master_link_status:up" not in resp_command(replica.port, "INFO", "replication"):
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


async def test_serve_waits_for_replicas_and_resumes_with_the_key(
    primary_and_replica: tuple[ServerProcess, ServerProcess],
) -> None:
    primary, replica = primary_and_replica
    deliveries: list[tuple[dict[str, str], bytes]] = []

    async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        deliveries.append(({k.decode().lower(): v.decode() for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_SECRET", "REDIS_URL")}
    env["HITL_WEBHOOK_SECRET"] = SECRET
    async with served(receiver) as webhook:
        argv = [
            CLI, "serve", "--redis-url", primary.url, "--table", TABLE, "--port", str(port),
            "--webhook-url", f"{webhook}/resume", "--wait-replicas", "1", "--resume-claim-idle", "2",
        ]  # fmt: skip
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: ASYNC220
        on_replica, on_primary = Redis.from_url(replica.url), Redis.from_url(primary.url)
        keys = Keys.for_table(TABLE)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                for _ in range(200):
                    try:
                        await http.get(f"{API}/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                body = {"token": "wf-1", "message": "Deploy?", "actions": [{"id": "approve"}]}
                created = await http.post(f"{API}/requests", json=body)
                assert created.status_code == 201, created.text
                request_id = created.json()["id"]
                assert await on_replica.exists(keys.req(request_id)) == 1  # acknowledged: on the replica too
                assert (await http.post(f"{API}/requests/{request_id}/timeout", json={})).status_code == 200
                for _ in range(100):
                    if deliveries:
                        break
                    await asyncio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            output, _ = await asyncio.to_thread(process.communicate, timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        try:
            assert process.returncode == 0, output
            [(headers, raw)] = deliveries
            assert verify_webhook(SECRET, raw, headers["x-hitl-timestamp"], headers["x-hitl-signature"])
            payload = msgspec.json.decode(raw)
            assert payload["token"] == "wf-1"
            assert headers["idempotency-key"] == payload["idempotencyKey"]
            assert payload["idempotencyKey"].startswith(f"{request_id}:")
            # Ctrl-C: the server deleted its own consumer (it held nothing), so no dead consumer piles up.
            assert await on_primary.xinfo_consumers(keys.events, keys.resume_group) == []
        finally:
            await on_replica.aclose()
            await on_primary.aclose()
