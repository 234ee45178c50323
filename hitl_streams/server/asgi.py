"""`hitl.asgi`: the internal HTTP API (REF §1.4) as a plain ASGI 3 application, no framework needed.

Routes are matched on the path relative to the mount point (`root_path`), optionally under the default
base path `/.well-known/hitl/v1`, so both of these work:

- mounted at `/.well-known/hitl/v1` (e.g. `Mount("/.well-known/hitl/v1", app=hitl.asgi)`);
- served at the root (`hitl-streams serve`), where the client's default base path is part of the path.

| Route (relative)                         | Method | Reply                                        |
|------------------------------------------|--------|----------------------------------------------|
| `requests`                               | POST   | 201 `{id, externalRef}`                      |
| `batches`                                | POST   | 201 `{batchId, ids, externalRef}`            |
| `notifications`                          | POST   | 200 `{id, externalRef}`                      |
| `requests/{id}/timeout`                  | POST   | 200 `{result}` (the body is read, ignored)   |
| `batches/{id}/timeout`                   | POST   | 200 `{results}` (the body is read, ignored)  |
| `requests/{id}/remind`, `batches/{id}/remind` | POST | 200 `{pending}` (no body: `{}`)           |
| `channels/{key}/...`                     | any    | the adapter with that `channel_key`          |
| `healthz`                                | GET    | 200 `{ok, state}`, 503 when the state is down |
| `inbox/...`                              | any    | the reviewer side, when on (`inbox_api.py`)  |

Internal routes need `Authorization: Bearer <secret>` when a secret is set (scheme case-insensitive).
Errors are `{"error": "..."}`: 400 bad JSON (not UTF-8, nested deeper than `MAX_JSON_DEPTH`) or shape or
a field out of bounds (`hitl_streams.limits`), 401, 404, 405, 408 body not received in time, 409 already
decided, 413 body or batch too large, 502 a channel failed, 503 with `Retry-After` when the state does
not answer (Redis down, loading, failing over: `hitl_streams.unavailable`); a 500 only for a bug
(logged, no traceback sent).
The ASGI `lifespan` protocol starts and stops the `Hitl`'s background work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from ..errors import (
    AlreadyResolvedError,
    DuplicateRequestError,
    DuplicateTokenError,
    NotFoundError,
    TooLargeError,
    ValidationError,
)
from ..limits import BODY_READ_TIMEOUT_SECONDS, MAX_JSON_DEPTH, json_too_deep
from ..unavailable import is_unavailable
from . import wire
from .auth import BearerAuth
from .core import Core, DeliveryError
from .health import HealthCheck

__all__ = ["BASE_PATH", "RETRY_AFTER_SECONDS", "UNAVAILABLE_MESSAGE", "HitlASGI"]

log = logging.getLogger("hitl_streams.server")

BASE_PATH = "/.well-known/hitl/v1"
_OPTIONAL_BODY = frozenset({"request-remind", "batch-remind"})
"""Routes whose body may be left out (treated as `{}`)."""
RETRY_AFTER_SECONDS = 1
UNAVAILABLE_MESSAGE = "state unavailable, retry later"
_RETRY_AFTER = ((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),)
_BASE_SEGMENTS = [".well-known", "hitl", "v1"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class _SlowBody(Exception):
    """The body did not arrive within the body timeout."""


def _route_path(scope: Scope) -> str:
    """The path relative to `root_path` (servers differ on whether `path` includes it)."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value)
    return None


class _Body:
    """Reads a request body, refusing more than `limit` bytes and waiting for it at most `timeout`
    seconds from the start of the request (a client that declares 100 bytes and sends 2 gets a 408
    instead of holding the connection forever)."""

    __slots__ = ("_deadline", "_ended", "_expired", "_limit", "_loop", "_receive", "_scope", "_seen")

    def __init__(self, scope: Scope, receive: Receive, limit: int, timeout: float) -> None:
        self._scope, self._receive, self._limit = scope, receive, limit
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + timeout
        self._seen = 0
        self._ended = False
        self._expired = False

    @property
    def unread(self) -> bool:
        """True while a body the request announced has not been read to its end: answering then closes
        the connection (else a client could keep trickling it in after the answer, holding it open)."""
        if self._ended:
            return False
        length = _header(self._scope, b"content-length")
        announced = _header(self._scope, b"transfer-encoding") is not None
        return announced or (length is not None and length.strip() not in (b"", b"0"))

    def declared_too_large(self) -> bool:
        length = _header(self._scope, b"content-length")
        return length is not None and length.strip().isdigit() and int(length) > self._limit

    async def receive(self) -> Message:
        """A `receive` that counts body bytes and keeps to the deadline (handed to channel adapters)."""
        # One timer around the wait, what `asyncio.timeout_at` does without its Python-level context
        # manager (and the running-loop lookups that cost a system call each in Python 3.11).
        task = asyncio.current_task(self._loop)
        assert task is not None
        timer = self._loop.call_at(self._deadline, self._expire, task)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                if task.uncancel() == 0:  # else the task was cancelled from elsewhere as well
                    raise _SlowBody from None
            raise
        finally:
            timer.cancel()
        if self._expired:  # it expired as the message came: the message wins, as with asyncio.timeout
            self._expired = False
            task.uncancel()
        if message.get("type") == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                raise _TooLarge
            if not message.get("more_body", False):
                self._ended = True
        return message

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._expired = True
        task.cancel()

    async def read(self) -> bytes:
        if self.declared_too_large():
            raise _TooLarge
        chunks: list[bytes] = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)


class _Responder:
    """Wraps `send` to know whether a response has started; closes the connection after an answer given
    before the request's body was read."""

    def __init__(self, send: Send, body: _Body) -> None:
        self._send = send
        self._body = body
        self.started = False

    async def send(self, message: Message) -> None:
        if message.get("type") == "http.response.start":
            self.started = True
        await self._send(message)

    async def json(self, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *extra,
        ]
        if self._body.unread and (b"connection", b"close") not in extra:
            headers.append((b"connection", b"close"))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def error(self, status: int, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        await self.json(status, wire.encode_error(message), extra)


_ALLOW_POST = ((b"allow", b"POST"),)


class HitlASGI:
    """The ASGI application of one `Hitl` (use `hitl.asgi`)."""

    def __init__(
        self,
        core: Core,
        auth: BearerAuth,
        *,
        max_body_bytes: int,
        state_kind: str,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
        inbox: Callable[[Scope, _Body, _Responder, list[str]], Awaitable[None]] | None = None,
        body_timeout: float = BODY_READ_TIMEOUT_SECONDS,
    ) -> None:
        self._core = core
        self._auth = auth
        self._limit = max_body_bytes
        self._body_timeout = body_timeout
        self._health = HealthCheck(getattr(core.state, "ping", None))
        self._state_kind = state_kind
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self.inbox = inbox
        """Serves `inbox/...` (reviewer credentials, not the bearer secret); `None`: those routes do not exist."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        body = _Body(scope, receive, self._limit, self._body_timeout)
        responder = _Responder(send, body)
        try:
            await self._http(scope, body, responder)
        except _TooLarge:
            if not responder.started:
                await responder.error(413, f"Request body too large (limit {self._limit} bytes)")
        except _SlowBody:
            if not responder.started:
                message = f"Request body not received within {self._body_timeout:g} s"
                await responder.error(408, message, ((b"connection", b"close"),))
        except _Disconnected:
            return
        except Exception as exc:
            # The one place where "the state does not answer" becomes a 503: retrying later may work.
            if is_unavailable(exc):
                where = f"{scope.get('method')} {_route_path(scope)}"
                log.warning("hitl: state unavailable while serving %s: %r", where, exc)
                if not responder.started:
                    await responder.error(503, UNAVAILABLE_MESSAGE, _RETRY_AFTER)
                return
            log.exception("hitl: unexpected error while serving %s %s", scope.get("method"), _route_path(scope))
            if not responder.started:
                await responder.error(500, "Internal server error")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._on_startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._on_shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, body: _Body, out: _Responder) -> None:
        segments = [s for s in _route_path(scope).split("/") if s]
        mount = (scope.get("root_path") or "").rstrip("/")
        if segments[:3] == _BASE_SEGMENTS:
            segments = segments[3:]
            mount += BASE_PATH
        method = scope.get("method", "GET")

        if segments[:1] == ["channels"]:
            await self._channel(scope, body, out, segments, mount)
            return
        if segments[:1] == ["inbox"] and self.inbox is not None:
            await self.inbox(scope, body, out, segments[1:])
            return
        if segments == ["healthz"]:
            if method not in ("GET", "HEAD"):
                await out.error(405, "Method not allowed", ((b"allow", b"GET, HEAD"),))
                return
            if await self._health.check():
                await out.json(200, wire.encode({"ok": True, "state": self._state_kind}))
            else:
                down = {"ok": False, "state": self._state_kind, "error": UNAVAILABLE_MESSAGE}
                await out.json(503, wire.encode(down), _RETRY_AFTER)
            return

        route = _match(segments)
        if route is None:
            await out.error(404, "Not found")
            return
        if method != "POST":
            await out.error(405, "Method not allowed", _ALLOW_POST)
            return
        if not self._auth.allows(_header(scope, b"authorization")):
            await out.error(401, "Unauthorized", ((b"www-authenticate", b'Bearer realm="hitl"'),))
            return
        name, subject = route
        data: object = None
        raw = await body.read()  # read even where it is ignored: a body that never arrives is a 408 anywhere
        if name not in ("request-timeout", "batch-timeout"):
            # Checked before decoding: a decoder recursing 100,000 levels deep would exhaust the stack.
            if json_too_deep(raw):
                await out.error(400, f"Invalid JSON body: nested deeper than {MAX_JSON_DEPTH} levels")
                return
            try:
                # Every field of a remind is optional: no body (curl without -d) means `{}`.
                data = {} if name in _OPTIONAL_BODY and not raw.strip() else msgspec.json.decode(raw)
            except (msgspec.MsgspecError, UnicodeDecodeError):
                # Malformed JSON or UTF-8, or a number JSON allows but no decoder can hold.
                await out.error(400, "Invalid JSON body")
                return
        try:
            status, reply = await self._dispatch(name, subject, data)
        except TooLargeError as exc:
            await out.error(413, str(exc))
        except ValidationError as exc:
            await out.error(400, str(exc))
        except NotFoundError as exc:
            await out.error(404, str(exc))
        except (AlreadyResolvedError, DuplicateTokenError, DuplicateRequestError) as exc:
            await out.error(409, str(exc))
        except DeliveryError as exc:
            await out.error(502, str(exc))
        else:
            await out.json(status, reply)

    async def _dispatch(self, name: str, subject: str, data: object) -> tuple[int, bytes]:
        core = self._core
        if name == "create-request":
            return 201, wire.encode(await core.create_request(wire.parse_create_request(data)))
        if name == "create-batch":
            return 201, wire.encode(await core.create_batch(wire.parse_create_batch(data)))
        if name == "notify":
            return 200, wire.encode(await core.notify(wire.parse_notify(data)))
        if name == "request-timeout":
            return 200, wire.encode_result(await core.timeout(subject))
        if name == "batch-timeout":
            return 200, wire.encode_results(await core.timeout_batch(subject))
        if name == "request-remind":
            return 200, wire.encode({"pending": await core.remind(subject, wire.parse_remind(data))})
        return 200, wire.encode({"pending": await core.remind_batch(subject, wire.parse_remind(data))})

    async def _channel(self, scope: Scope, body: _Body, out: _Responder, segments: list[str], mount: str) -> None:
        key = segments[1] if len(segments) > 1 else None
        adapter = next((a for a in self._core.adapters if key is not None and a.channel_key == key), None)
        if adapter is None or key is None:
            await out.error(404, "Not found")
            return
        if body.declared_too_large():
            raise _TooLarge
        child = dict(scope)
        child["root_path"] = f"{mount}/channels/{key}"
        await adapter.handle(child, body.receive, out.send)


def _match(segments: list[str]) -> tuple[str, str] | None:
    if segments == ["requests"]:
        return "create-request", ""
    if segments == ["batches"]:
        return "create-batch", ""
    if segments == ["notifications"]:
        return "notify", ""
    if len(segments) == 3 and segments[0] in ("requests", "batches") and segments[2] in ("timeout", "remind"):
        collection = "request" if segments[0] == "requests" else "batch"
        return f"{collection}-{segments[2]}", segments[1]
    return None
