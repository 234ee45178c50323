"""`hitl-streams serve` as a user runs it (a subprocess, Ctrl-C), and the embedded Redis it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from hitl_streams.server.serve import ServeOptions, embedded_redis, exposure_refusal, is_loopback, redact_url

from .support import API, APPROVE_DENY, free_port

CLI = [str(Path(sys.executable).parent / "hitl-streams")]


def test_embedded_redis_keeps_its_data_with_aof_and_stops(tmp_path: Path) -> None:
    with embedded_redis(tmp_path / "data") as url:
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("k", "v")
        client.close()
        port = int(url.rsplit(":", 1)[1])
    assert (tmp_path / "data").is_dir() and any((tmp_path / "data").iterdir())
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()
    with embedded_redis(tmp_path / "data") as url:  # the data survived the restart
        assert redis.Redis.from_url(url).get("k") == b"v"


def test_redact_url_hides_the_password() -> None:
    assert redact_url("redis://user:hunter2@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://:hunter2@host:6379") == "redis://:***@host:6379"
    assert redact_url("redis://host:6379") == "redis://host:6379"


def test_serve_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_SECRET", "REDIS_URL")}
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("serve did not come up")
        assert health.status_code == 200
        body = {"token": "t1", "message": "Deploy?", "actions": APPROVE_DENY}
        created = httpx.post(f"http://127.0.0.1:{port}{API}/requests", json=body, timeout=5)
        assert created.status_code == 201
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert f"hitl-streams serving http://127.0.0.1:{port}/.well-known/hitl/v1" in output
    assert "export HITL_SECRET=" in output
    assert output.rstrip().endswith("hitl-streams stopped")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_serve_refuses_a_public_interface_without_a_secret(tmp_path: Path, host: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_SECRET", "REDIS_URL")}
    finished = subprocess.run(
        [*CLI, "serve", "--host", host, "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode != 0
    lines = (finished.stdout + finished.stderr).strip().splitlines()
    assert lines == [
        f"hitl-streams: refusing to serve {host} without HITL_SECRET (anyone reaching the port could create, "
        "time out and escalate requests): set HITL_SECRET, or pass --insecure-no-secret to serve an open API anyway"
    ]
    assert not (tmp_path / "data").exists()  # refused before starting anything


def test_only_loopback_may_be_open_unless_the_operator_says_insecure() -> None:
    for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]:
        assert is_loopback(host) and exposure_refusal(ServeOptions(host=host), None) is None
    public = ServeOptions(host="0.0.0.0")
    assert exposure_refusal(public, None) is not None
    assert exposure_refusal(public, "") is not None
    assert exposure_refusal(public, "a-secret") is None
    assert exposure_refusal(ServeOptions(host="0.0.0.0", insecure_no_secret=True), None) is None
