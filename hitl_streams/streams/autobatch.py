"""Autobatching: commands that many tasks issue in the same event-loop tick go out as one socket write on
one connection, and their replies are read back in order (pipelining, as ioredis's auto-pipelining does).

Why: redis-py's asyncio client spends most of an operation's CPU on its own machinery (a pool checkout,
a timeout scope, packing in Python, one socket write and one event-loop wake-up per command). Under
concurrency those costs, not Redis, set the ceiling. Here, a command costs one C-packed buffer, one future
and one in-order reply from the C hiredis reader, shared by every command of the tick.

Each command stays exactly the command it was: nothing is wrapped in MULTI/EXEC and no two commands are
merged, so a Lua script is atomic on its own, as before, and an error reply goes to the one caller whose
command caused it. Replies on one connection come back in send order, so the n-th reply is the n-th
command's.

`AutoBatchRedis.wrap(client)` gives a `redis.asyncio.Redis` on the same connection pool and with the same
reply handling (decoded or not, response callbacks) whose `execute_command` takes that path for a fixed
set of non-blocking commands (`BATCHED`); any other command, and every command of a client with a
non-UTF-8 encoding, goes through redis-py unchanged. RESP3 push messages on the batching connection are
skipped (it subscribes to nothing). If the connection drops (or no reply comes within the
client's `socket_timeout`), the commands waiting on it are sent again through redis-py's own path when the
client's retry policy allows a retry, and fail with the connection error when it does not: what redis-py
itself does with a command whose connection failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["BATCHED", "AutoBatchRedis", "autobatched", "raw_link"]

BATCHED: Final = frozenset(
    {
        "GET",
        "SET",
        "MGET",
        "EXISTS",
        "ZCARD",
        "ZRANGE",
        "ZREVRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGEBYSCORE",
        "ZSCORE",
        "SMEMBERS",
        "SISMEMBER",
        "LRANGE",
        "LLEN",
        "XRANGE",
        "XREVRANGE",
        "XLEN",
        "XACK",
        "TYPE",
        "EVALSHA",
        "EVAL",
        "PING",
    }
)
"""Commands sent through the batching path: none of them blocks the connection. Scripts included: a
script runs atomically whatever else is on the wire."""

_NOT_ENOUGH_DATA: Final = object()
_PUSH: Final[type | None] = getattr(hiredis, "PushNotification", None)
_NEVER_DECODE: Final = "NEVER_DECODE"
_EMPTY_RESPONSE: Final = "EMPTY_RESPONSE"


class _Bulk:
    """Waits for the next `remaining` replies at once (one future for a whole group of commands)."""

    __slots__ = ("future", "remaining", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.remaining = count
        self.replies: list[Any] = []


class _Link:
    """One dedicated connection: a write buffer flushed once per loop tick, and a reader task that hands
    each reply to the oldest waiting future."""

    __slots__ = (
        "_disposed",
        "_flush_scheduled",
        "_out",
        "_pending",
        "_reader_task",
        "_received",
        "_replies",
        "_timeout",
        "_watchdog",
        "conn",
        "error",
        "loop",
        "pool",
        "thread",
    )

    def __init__(self, pool: Any, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.conn = conn
        self.loop = loop
        self.thread = threading.get_ident()
        self.error: BaseException | None = None
        self._out: list[bytes] = []
        self._pending: deque[asyncio.Future[Any] | _Bulk] = deque()
        self._flush_scheduled = False
        self._disposed = False
        # redis-py's `socket_timeout` bounds a wait for a reply; here a watchdog armed while replies are
        # owed fails the link when none arrives for that long.
        timeout = getattr(conn, "socket_timeout", None)
        self._timeout: float | None = float(timeout) if timeout else None
        self._received = 0
        self._watchdog: asyncio.TimerHandle | None = None
        encoder = conn.encoder
        options: dict[str, Any] = {
            "protocolError": InvalidResponse,
            "replyError": BaseParser.parse_error,
            "notEnoughData": _NOT_ENOUGH_DATA,
        }
        if encoder.decode_responses:
            options["encoding"] = encoder.encoding
            options["errors"] = encoder.encoding_errors
        self._replies = hiredis.Reader(**options)
        self._reader_task = loop.create_task(self._read())

    @property
    def alive(self) -> bool:
        return self.error is None

    def current(self) -> bool:
        """Alive, and its loop is the one running this code. Without `asyncio.get_running_loop()`, which
        on Python 3.11 makes a getpid() system call each time (about ten per HTTP create): only one loop
        runs per thread, so a running loop of this thread is the running loop."""
        return self.error is None and self.thread == threading.get_ident() and self.loop.is_running()

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        self._out.append(packed)
        self._pending.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def send_many(self, packed: list[bytes]) -> asyncio.Future[list[Any]]:
        """Queue a group of packed commands; one future gets all their replies, in order."""
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self._out.extend(packed)
        self._pending.append(_Bulk(future, len(packed)))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out or self.error is not None:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        try:
            self.conn._writer.write(data)
        except Exception as exc:  # a closed transport: fail what waits, the callers fall back
            self._fail(RedisConnectionError(f"autobatch: write failed: {exc!r}"))
            return
        if self._timeout is not None and self._watchdog is None:
            self._watchdog = self.loop.call_later(self._timeout, self._check, self._received)

    def _check(self, received_when_armed: int) -> None:
        self._watchdog = None
        if self.error is not None or not self._pending:
            return
        if self._received == received_when_armed:
            self._fail(RedisTimeoutError(f"autobatch: no reply within {self._timeout} s"))
            return
        assert self._timeout is not None
        self._watchdog = self.loop.call_later(self._timeout, self._check, self._received)

    async def _read(self) -> None:
        stream = self.conn._reader
        replies, pending = self._replies, self._pending
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    raise RedisConnectionError("autobatch: connection closed by server")
                replies.feed(data)
                while (reply := replies.gets()) is not _NOT_ENOUGH_DATA:
                    if _PUSH is not None and isinstance(reply, _PUSH):
                        continue  # a RESP3 push answers no command (this connection subscribes to nothing)
                    self._received += 1
                    head = pending[0]
                    if isinstance(head, _Bulk):
                        head.replies.append(reply)
                        head.remaining -= 1
                        if head.remaining:
                            continue
                        pending.popleft()
                        if not head.future.done():
                            head.future.set_result(head.replies)
                    else:
                        pending.popleft()
                        if not head.done():  # a cancelled caller: its reply is read and dropped
                            head.set_result(reply)
        except asyncio.CancelledError:
            self._fail(RedisConnectionError("autobatch: connection reader cancelled"))
            raise
        except Exception as exc:
            self._fail(exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(repr(exc)))

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._pending:
            head = self._pending.popleft()
            future = head.future if isinstance(head, _Bulk) else head
            if not future.done():
                future.set_exception(error)
        self._out.clear()
        if not self.loop.is_closed():
            self.loop.create_task(self._dispose())

    async def _dispose(self) -> None:
        """Disconnect and hand the connection back to the pool, once."""
        if self._disposed:
            return
        self._disposed = True
        await self.conn.disconnect(nowait=True)
        await self.pool.release(self.conn)

    async def shutdown(self) -> None:
        self.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader_task
        await self._dispose()

    def close(self) -> None:
        if not self._reader_task.done():
            with contextlib.suppress(RuntimeError):  # its event loop is closed already
                self._reader_task.cancel()


class AutoBatchRedis(Redis):
    """A `redis.asyncio.Redis` that batches `BATCHED` commands issued in the same loop tick (see module
    docs). Made by `wrap`; shares the wrapped client's pool, so closing that client closes this one."""

    _link: _Link | None
    _link_lock: asyncio.Lock | None
    _fast: bool

    @classmethod
    def wrap(cls, client: Redis) -> AutoBatchRedis:
        wrapped = cls(connection_pool=client.connection_pool)
        wrapped.response_callbacks = client.response_callbacks
        kwargs = client.connection_pool.connection_kwargs
        encoding = str(kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
        # RESP2 or RESP3 (redis-py 8's default): hiredis parses either, and the reply shapes are those the
        # wrapped client's own response callbacks expect.
        wrapped._fast = encoding in ("utf-8", "utf8")
        wrapped._link = None
        wrapped._link_lock = None
        return wrapped

    async def _get_link(self) -> _Link:
        loop = asyncio.get_running_loop()
        link = self._link
        if link is not None and link.alive and link.loop is loop:
            return link
        if self._link_lock is None or self._link_lock._get_loop() is not loop:  # type: ignore[attr-defined]
            self._link_lock = asyncio.Lock()
        async with self._link_lock:
            link = self._link
            if link is None or not link.alive or link.loop is not loop:
                if link is not None:
                    link.close()
                conn = await self.connection_pool.get_connection()  # type: ignore[no-untyped-call]
                link = self._link = _Link(self.connection_pool, conn, loop)
        return link

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0]
        if not self._fast or name not in BATCHED or _NEVER_DECODE in options:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        link = self._link
        if link is None or not link.current():
            link = await self._get_link()
        try:
            packed = hiredis.pack_command(args)
        except TypeError:  # an argument type hiredis does not pack: let redis-py encode (or refuse) it
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        try:
            reply = await link.send(packed)
            if isinstance(reply, (RedisConnectionError, RedisTimeoutError)):
                # An error reply redis-py classes with lost connections (`LOADING` is a `BusyLoadingError`,
                # a `ConnectionError`): never a value, retried like a dropped connection.
                raise reply
        except (RedisConnectionError, RedisTimeoutError):
            # As redis-py does with a command whose connection failed: send it again if the client's retry
            # policy allows (StreamState's writes carry op ids, so a second run is a no-op), else raise.
            # redis-py's own path then retries, with the policy's backoff, up to its bound.
            if link.conn.retry.get_retries() < 1:
                raise
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if isinstance(reply, BaseException):  # every other error reply raises for its own caller
            if _EMPTY_RESPONSE in options and isinstance(reply, ResponseError):
                return options[_EMPTY_RESPONSE]
            raise reply
        if options:
            options.pop(_EMPTY_RESPONSE, None)
            options.pop("keys", None)
        callback = self.response_callbacks.get(name)
        if callback is None:
            return reply
        value = callback(reply, **options)
        return await value if inspect.isawaitable(value) else value

    def send_now(self, args: Sequence[Any]) -> asyncio.Future[Any] | None:
        """`execute_command` without a coroutine of its own, for a caller that reads the raw reply itself
        (a commit script's): `args` is queued on this loop's batching connection now and the future of its
        reply returned, an error reply as the exception instance itself, no response callback applied.
        None when it cannot go that way now (no connection set up on this loop yet, a broken one, an
        argument hiredis does not pack): use `execute_command`. A lost connection (the future's exception,
        or a reply redis-py classes with them) goes to `resend`."""
        link = self._link
        if link is None or not self._fast or not link.current():
            return None
        try:
            packed = hiredis.pack_command(args if type(args) is tuple else tuple(args))  # a tuple, or TypeError
        except TypeError:
            return None
        return link.send(packed)

    async def resend(self, args: Sequence[Any], error: BaseException) -> Any:
        """What `execute_command` does with a command whose batching connection failed (`error`): send it
        again through redis-py's own path when the client's retry policy allows, else raise `error`."""
        link = self._link
        if link is None or link.conn.retry.get_retries() < 1:
            raise error
        return await super().execute_command(*args)  # type: ignore[no-untyped-call]

    async def execute_raw(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send `commands` together on the batching connection; their raw replies (no response callbacks),
        in order, an error reply as its exception instance. For bulk work on known, non-blocking
        commands (replays); the caller checks the replies."""
        return await (await self.submit_raw(commands))

    async def submit_raw(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        """`execute_raw` without the wait: `commands` are queued now, and the future of their replies is
        returned. Groups submitted one after another reach Redis in that order, so a caller can keep
        Redis busy with one group while it computes the next."""
        if not self._fast:
            raise RuntimeError("submit_raw needs a RESP2, UTF-8 client")
        link = await self._get_link()
        if not commands:
            done: asyncio.Future[list[Any]] = link.loop.create_future()
            done.set_result([])
            return done
        pack = hiredis.pack_command
        return link.send_many([pack(tuple(command)) for command in commands])

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the batching connection (the pool belongs to the wrapped client)."""
        if self._link is not None:
            link, self._link = self._link, None
            if link.loop is asyncio.get_running_loop():
                await link.shutdown()
            else:
                link.close()
        await super().aclose(close_connection_pool)


_wrapped: weakref.WeakKeyDictionary[Redis, AutoBatchRedis] = weakref.WeakKeyDictionary()


def autobatched(client: Any) -> Any:
    """`client` wrapped in `AutoBatchRedis` when it is a plain `redis.asyncio.Redis` (one wrapper, so one
    batching connection, per client); anything else (a cluster client, whose pipelines refuse scripts; an
    already wrapped client; a test double) as is."""
    if isinstance(client, (AutoBatchRedis, RedisCluster)) or type(client) is not Redis:
        return client
    wrapped = _wrapped.get(client)
    if wrapped is None:
        wrapped = _wrapped[client] = AutoBatchRedis.wrap(client)
    return wrapped


def raw_link(client: Any) -> AutoBatchRedis | None:
    """The batching client behind `client` when it can carry raw commands (`execute_raw`, `submit_raw`:
    a plain client that decodes UTF-8); None for anything else (a cluster, another encoding)."""
    batched = autobatched(client)
    return batched if isinstance(batched, AutoBatchRedis) and batched._fast else None
