"""A Redis server that is fsync'd on every write, `kill -9`'d, and restarted on the same port and data.

    with CrashableRedis() as server:
        ...write through redis.asyncio.Redis.from_url(server.url)...
        server.crash()      # SIGKILL: no shutdown, no final save
        server.restart()    # same port, same dir: the AOF is replayed before it answers PING
        await server.crash_and_restart()   # both, off the event loop, while writers keep writing

The server runs with `--appendonly yes --appendfsync always --save ""`, so every write acknowledged to a
client is on disk before the reply leaves, and a restart replays exactly those writes (SPEC §5.2).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from ._servers import Binaries, ServerProcess

__all__ = ["CrashableRedis"]

_AOF_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]


class CrashableRedis:
    """One AOF-always server in a temporary directory; `crash()`, then `restart()`, as often as needed."""

    def __init__(self, *, binaries: Binaries | None = None) -> None:
        self._server = ServerProcess(_AOF_ALWAYS, binaries=binaries, name="crash")
        self.crashes = 0
        self.restart_seconds: list[float] = []
        """How long each restart took until the server answered PING (AOF loaded)."""

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def dir(self) -> str:
        return str(self._server.dir)

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> CrashableRedis:
        self._server.start()
        return self

    def crash(self) -> None:
        """`kill -9` the server and reap it. Clients see their connections drop."""
        self._server.kill()
        self.crashes += 1

    def restart(self) -> CrashableRedis:
        """Start the server again on the same port and directory; returns once the AOF is loaded."""
        self._server.restart()
        self.restart_seconds.append(self._server.start_seconds)
        return self

    async def crash_and_restart(self) -> None:
        """`crash()` then `restart()`, in a worker thread so the event loop (and its writers) keep running."""
        await asyncio.to_thread(self.crash)
        await asyncio.to_thread(self.restart)

    def stop(self) -> None:
        """Kill the server and remove its directory. Idempotent."""
        self._server.stop()

    def __enter__(self) -> CrashableRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
