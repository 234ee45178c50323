"""`hitl-streams serve --workers N`: N processes, each a replica on the same Redis, as a user runs it.

A real `serve` process on the test Redis with two workers and a webhook receiver: requests created and
timed out over many connections (each accepted by either worker) each answer once, every decision is resumed
exactly once, a server-side schedule fires once, and Ctrl-C stops every worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitl_streams.server.serve import ServeError, ServeOptions, serve

from .support import API, APPROVE_DENY, free_port

CLI = [str(Path(sys.executable).parent / "hitl-streams")]
SECRET = "workers-secret"


@contextlib.contextmanager
def _receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook endpoint recording every resume it receives (200 to each)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/resume", received
    finally:
        server.shutdown()
        server.server_close()


def _workers_of(pid: int) -> list[int]:
    """The worker processes uvicorn's supervisor spawned (children running multiprocessing's spawn)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _wait_for(check: Any, what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_answer_resume_and_fire_once_and_ctrl_c_stops_them(
    tmp_path: Path, redis_url: str, table_name: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {SECRET}"}
    env = {**os.environ, "HITL_SECRET": SECRET, "HITL_WEBHOOK_SECRET": "hook"}
    with _receiver() as (hook_url, resumed):
        command = [*CLI, "serve", "--redis-url", redis_url, "--table", table_name, "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--workers", "2", "--webhook-url", hook_url, "--log-level", "warning"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_for(lambda: _healthy(base), "serve")
            workers = _wait_for(lambda: len(_workers_of(process.pid)) == 2 and _workers_of(process.pid), "workers")

            # Each request on a connection of its own, which the kernel hands to either worker.
            ids = []
            for i in range(30):
                body = {"token": f"t{i}", "message": "Deploy?", "actions": APPROVE_DENY}
                created = httpx.post(f"{base}{API}/requests", json=body, headers=headers, timeout=30)
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
            again = httpx.post(f"{base}{API}/requests", json=body, headers=headers, timeout=30)
            assert again.json()["id"] == ids[-1]  # a retried create finds the request, whichever worker
            for request_id in ids:
                for _ in range(2):  # a repeated timeout answers the stored result
                    timed_out = httpx.post(f"{base}{API}/requests/{request_id}/timeout", headers=headers, timeout=30)
                    assert timed_out.status_code == 200 and timed_out.json()["result"]["type"] == "TIMED_OUT"

            # A server-side schedule: due in a second, fired by one worker.
            body = {"token": "scheduled", "message": "Later?", "actions": APPROVE_DENY, "schedule": {"timeout": "1s"}}
            scheduled = httpx.post(f"{base}{API}/requests", json=body, headers=headers, timeout=30).json()["id"]

            _wait_for(lambda: len(resumed) >= 31, "every decision resumed")
            time.sleep(1.5)  # time for a duplicate to arrive, if any were sent
            tokens = Counter(job["token"] for job in resumed)
            assert tokens == Counter([f"t{i}" for i in range(30)] + ["scheduled"])
            audit = subprocess.run(
                [*CLI, "audit", scheduled, "--redis-url", redis_url, "--table", table_name],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            assert audit.count("request.timed_out") == 1 and audit.count("schedule.fired") == 1, audit

            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output
    assert "  workers:  2 processes, each a replica on the same Redis" in output
    assert output.rstrip().endswith("hitl-streams stopped")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}{API}/healthz", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def test_workers_must_be_at_least_one() -> None:
    with pytest.raises(ServeError, match="--workers must be at least 1") as refused:
        serve(ServeOptions(port=free_port(), workers=0), echo=lambda line: None)
    assert refused.value.code == 2
