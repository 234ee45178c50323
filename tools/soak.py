"""Soak test: `hitl-streams serve` under create/decide load while Redis restarts and a replica is killed.

    .venv/bin/python tools/soak.py --duration 40 --max-requests 4000

Everything runs on loopback and stops at the end: a private redis-server/valkey-server (AOF, fsync
always, slow to load so that it answers LOADING after a restart), two `hitl-streams serve` replicas on
it resuming workflows through a webhook receiver run by this script, and load workers that create
requests and time them out over HTTP. Faults, spread over the run: Redis SHUTDOWN and restarted on its
AOF; one replica killed with SIGKILL and started again.

Printed at the end: acknowledged creates and decisions; lost ones (an acknowledged create missing from
the state, an acknowledged decision never delivered); duplicated deliveries (by token, and those left
after dropping repeats of one idempotency key, which must be 0); status codes per route; `verify`.
Bounded in time (`--duration`, plus at most `--drain` seconds to deliver) and count (`--max-requests`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvicorn

from hitl_streams import StreamState
from hitl_streams.server import verify_webhook
from hitl_streams.streams.connect import connect
from hitl_streams.testing._servers import ServerProcess, free_port, resp_command

API = "/.well-known/hitl/v1"
HITL_SECRET = "soak-api-secret"
WEBHOOK_SECRET = "soak-webhook-secret"
TABLE = "soak.human_requests"
REDIS_ARGS = [
    "--appendonly", "yes", "--appendfsync", "always", "--save", "",
    "--enable-debug-command", "local",
    "--key-load-delay", "50", "--loading-process-events-interval-bytes", "1024",
]  # fmt: skip


@dataclass
class Receiver:
    """The engine's webhook endpoint: checks signatures, records (token, idempotency key) per delivery."""

    deliveries: list[tuple[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    bad_signatures: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = 200
        if verify_webhook(WEBHOOK_SECRET, body, headers.get("x-hitl-timestamp"), headers.get("x-hitl-signature")):
            payload = msgspec.json.decode(body)
            self.deliveries.append((payload["token"], headers.get("idempotency-key", "")))
            self.times.append(time.monotonic())
        else:
            self.bad_signatures += 1
            status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class Replica:
    """One `hitl-streams serve` process."""

    def __init__(self, name: str, redis_url: str, webhook_url: str, claim_idle: float, logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [
            str(Path(sys.executable).with_name("hitl-streams")), "serve",
            "--redis-url", redis_url, "--table", TABLE, "--host", "127.0.0.1", "--port", str(self.port),
            "--webhook-url", webhook_url, "--log-level", "warning",
            "--resume-claim-idle", str(claim_idle),
        ]  # fmt: skip
        self.env = {**os.environ, "HITL_SECRET": HITL_SECRET, "HITL_WEBHOOK_SECRET": WEBHOOK_SECRET}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = logs / f"serve-{name}.log"

    def _spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self._spawn()
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}{API}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"replica {self.name} did not start; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Load:
    replicas: list[Replica]
    max_requests: int
    created: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    running: bool = True
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def worker(self, http: httpx.AsyncClient, n: int) -> None:
        headers = {"authorization": f"Bearer {HITL_SECRET}"}
        while self.running:
            number = next(self._numbers)
            if number >= self.max_requests:
                return
            replica = self.replicas[(n + number) % len(self.replicas)]
            token = f"soak-{number}-{uuid.uuid4().hex[:8]}"
            body = {"token": token, "message": "Ship it?", "actions": [{"id": "approve"}]}
            created = await self._post(http, "create", f"{replica.url}{API}/requests", body, headers)
            if created is None or created.status_code != 201:
                await asyncio.sleep(0.05)
                continue
            request_id = created.json()["id"]
            self.created[token] = request_id
            decided = await self._post(
                http, "timeout", f"{replica.url}{API}/requests/{request_id}/timeout", {}, headers
            )
            if decided is not None and decided.status_code == 200:
                self.decided.add(token)

    async def _post(self, http: httpx.AsyncClient, route: str, url: str, body: Any, headers: Any) -> Any:
        try:
            response = await http.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.statuses[f"{route} {type(exc).__name__}"] += 1
            return None
        self.statuses[f"{route} {response.status_code}"] += 1
        return response


def _fill(server: ServerProcess, keys: int) -> None:
    """Filler keys in the AOF's base file, so that loading it after a restart takes a while."""
    resp_command(server.port, "DEBUG", "POPULATE", str(keys), "filler", timeout=30)
    resp_command(server.port, "BGREWRITEAOF")
    time.sleep(1.0)


def _restart_redis(server: ServerProcess) -> float:
    began = time.monotonic()
    with contextlib.suppress(OSError):
        resp_command(server.port, "SHUTDOWN")
    assert server.proc is not None
    server.proc.wait(timeout=30)
    server.restart(timeout=120)
    return time.monotonic() - began


async def soak(args: argparse.Namespace) -> int:
    redis = ServerProcess(REDIS_ARGS, name="soak").start()
    logs = Path(tempfile.mkdtemp(prefix="hitl-soak-"))
    failed: Any = True
    receiver = Receiver()
    replicas: list[Replica] = []
    events: list[str] = []
    client = connect(redis.url)
    try:
        await asyncio.to_thread(_fill, redis, args.filler_keys)
        receiver_port = free_port()
        web = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=receiver_port, log_level="warning"))
        web_task = asyncio.create_task(web.serve())
        webhook = f"http://127.0.0.1:{receiver_port}/resume"
        replicas = [Replica(f"r{n}", redis.url, webhook, args.claim_idle, logs) for n in range(2)]
        for replica in replicas:
            await replica.start()
        load = Load(replicas, args.max_requests)
        limits = httpx.Limits(max_connections=args.workers * 2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            workers = [asyncio.create_task(load.worker(http, n)) for n in range(args.workers)]
            started = time.monotonic()
            third = args.duration / 3
            await asyncio.sleep(third)
            took = await asyncio.to_thread(_restart_redis, redis)
            events.append(f"redis SHUTDOWN + restart on its AOF at {third:.0f}s (down, then LOADING: {took:.1f}s)")
            await asyncio.sleep(max(0.0, 2 * third - (time.monotonic() - started)))
            replicas[1].kill()
            killed_at = time.monotonic() - started
            events.append(f"replica r1 SIGKILLed at {killed_at:.0f}s")
            await asyncio.sleep(1.0)
            await replicas[1].start()
            events.append("replica r1 started again")
            await asyncio.sleep(max(0.0, args.duration - (time.monotonic() - started)))
            load.running = False
            await asyncio.gather(*workers)
        for _ in range(int(args.drain * 5)):  # wait for the acknowledged decisions to be delivered
            if load.decided <= {t for t, _ in receiver.deliveries}:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # late repeats show up here

        state = StreamState(client, table_name=TABLE)
        lost_creates = [t for t, i in load.created.items() if await state.get(i) is None]
        delivered = collections.Counter(token for token, _ in receiver.deliveries)
        by_key = collections.Counter(key for _, key in receiver.deliveries)
        lost_decisions = sorted(load.decided - set(delivered))
        duplicated = sum(n - 1 for n in delivered.values() if n > 1)
        keys_per_token: dict[str, set[str]] = collections.defaultdict(set)
        for token, key in receiver.deliveries:
            keys_per_token[token].add(key)
        after_dedupe = sum(len(keys) - 1 for keys in keys_per_token.values())
        report = await state.verify()

        print("\n=== hitl-streams soak ===")
        print(f"duration {args.duration:.0f}s, {args.workers} workers, 2 replicas, max {args.max_requests} requests")
        for event in events:
            print(f"fault: {event}")
        print(f"acknowledged creates:    {len(load.created)}")
        print(f"acknowledged decisions:  {len(load.decided)}")
        print(f"lost creates:            {len(lost_creates)}")
        print(f"lost decisions:          {len(lost_decisions)} (acknowledged, never delivered)")
        print(f"deliveries:              {len(receiver.deliveries)} ({len(delivered)} decisions)")
        print(f"duplicated deliveries:   {duplicated} (same idempotency key: {sum(n - 1 for n in by_key.values())})")
        print(f"duplicates after dedupe: {after_dedupe} (by idempotency key; must be 0)")
        repeats = sorted(
            at - started
            for (token, _), at in zip(receiver.deliveries, receiver.times, strict=True)
            if delivered[token] > 1
        )
        if repeats:
            print(f"  deliveries of repeated decisions at: {', '.join(f'{t:.1f}s' for t in repeats)}")
        print(f"bad signatures:          {receiver.bad_signatures}")
        print(f"verify:                  {'clean' if report.clean else report} ({report.events} events)")
        print("status codes:")
        for name, count in sorted(load.statuses.items()):
            print(f"  {name:<28} {count}")
        web.should_exit = True
        await web_task
        failed = lost_creates or lost_decisions or after_dedupe or not report.clean or receiver.bad_signatures
        return 1 if failed else 0
    finally:
        for replica in replicas:
            replica.stop()
        await client.aclose()
        redis.stop()
        if failed:
            print(f"server logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--max-requests", type=int, default=5000, help="stop creating after this many")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for deliveries afterwards")
    parser.add_argument("--claim-idle", type=float, default=3.0, help="serve --resume-claim-idle (seconds)")
    parser.add_argument("--filler-keys", type=int, default=20000, help="keys that make the AOF slow to load")
    args = parser.parse_args()
    if args.duration <= 0 or args.duration > 600 or args.max_requests < 1:
        parser.error("--duration must be in (0, 600] and --max-requests positive")
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
