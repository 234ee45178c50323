"""Binary lookup, port picking and process clean-up of hitl_streams.testing._servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from hitl_streams.testing._servers import ServerNotFoundError, ServerProcess, find_binaries, free_port, resp_command


def test_no_binary_fails_with_a_message_saying_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFoundError) as caught:
        find_binaries(path=str(tmp_path))
    message = str(caught.value)
    assert "No redis-server or valkey-server binary found on PATH" in message
    assert "apt-get install redis-server" in message
    assert "HITL_TEST_REDIS_SERVER" in message


def test_a_server_without_a_cli_cannot_make_a_cluster(tmp_path: Path) -> None:
    real = find_binaries().server
    (tmp_path / Path(real).name).symlink_to(real)
    assert find_binaries(path=str(tmp_path)).server == str(tmp_path / Path(real).name)
    with pytest.raises(ServerNotFoundError, match="no redis-cli/valkey-cli to create a cluster"):
        find_binaries(need_cli=True, path=str(tmp_path))


def test_the_binary_found_is_version_7_or_newer() -> None:
    binaries = find_binaries(need_cli=True)
    assert binaries.version >= (7, 0, 0), binaries
    assert binaries.cli is not None


def test_free_port_leaves_room_for_the_cluster_bus() -> None:
    ports = [free_port(cluster_bus=True) for _ in range(20)]
    assert len(set(ports)) == 20
    for port in ports:
        assert 20000 <= port <= 29999
        for p in (port, port + 10000):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server binds
                sock.bind(("127.0.0.1", p))


def test_a_server_starts_answers_and_stop_removes_everything() -> None:
    server = ServerProcess(["--save", "", "--appendonly", "no"])
    try:
        server.start()
        assert server.start_seconds < 5
        assert resp_command(server.port, "PING") == b"+PONG"
        with SyncRedis(host="127.0.0.1", port=server.port) as client:
            assert client.config_get("bind") == {"bind": "127.0.0.1"}  # loopback only
        pid = server.proc.pid if server.proc else 0
    finally:
        server.stop()
    assert not server.dir.exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    with pytest.raises(OSError):
        resp_command(server.port, "PING")


def test_the_server_binary_can_be_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_binaries(need_cli=True)
    monkeypatch.setenv("HITL_TEST_REDIS_SERVER", real.server)
    monkeypatch.setenv("HITL_TEST_REDIS_CLI", os.devnull)
    chosen = find_binaries(need_cli=True)
    assert (chosen.server, chosen.cli) == (real.server, os.devnull)


def test_a_process_that_exits_without_stopping_leaves_nothing_behind() -> None:
    code = (
        "from hitl_streams.testing.crash import CrashableRedis\n"
        "from hitl_streams.testing._servers import ServerProcess\n"
        "s = CrashableRedis().start()\n"
        "c = [ServerProcess(cluster_bus=True).start() for _ in range(3)]\n"
        "print(s.port, s.dir, *(n.port for n in c), *(n.dir for n in c))\n"
        "raise SystemExit(3)  # no stop(): the atexit hook must clean up\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stderr
    fields = done.stdout.split()
    ports, dirs = [int(fields[0]), *map(int, fields[2:5])], [fields[1], *fields[5:8]]
    for port in ports:
        with pytest.raises(OSError):
            resp_command(port, "PING")
    for leftover in dirs:
        assert not Path(leftover).exists()
