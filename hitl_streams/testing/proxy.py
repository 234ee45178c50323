"""An asyncio TCP proxy in front of one Redis server that can lose the reply of a write, once, or answer
chosen commands with an error without running them.

    proxy = await ReplyDropProxy("127.0.0.1", 6379).start()
    client = proxy.client()                     # redis.asyncio.Redis(host=..., port=...)
    proxy.drop_reply_once(match=b"EVALSHA")
    proxy.fail_next(match=b"XACK", times=2)     # the next two XACKs get `-ERR injected fault`, unrun

The proxy forwards every byte both ways and parses RESP on both sides only to pair each command with its
reply. When an armed command passes, it is forwarded (so the server executes it); when its reply comes
back, the proxy swallows it and closes the client's connection instead. A redis-py 8.1 client built with
`Redis(host=..., port=...)` (default `Retry`: 10 retries on `ConnectionError`/`TimeoutError`, for single
commands, `EVALSHA` and `MULTI`/`EXEC` pipelines alike) reconnects and sends the same command again: a naive
write runs twice (SPEC §5.8). A client from `Redis.from_url(...)` has no retries: it raises
`ConnectionError` instead, and the write ran once.

By default an error reply (`-NOSCRIPT ...`, `-ERR ...`) is passed through and the trigger stays armed, so
the reply that is lost is always one of a command the server really ran. RESP3 push frames are forwarded
and not paired. Not meant for pub/sub connections in RESP2 (their messages are not replies).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

__all__ = ["DroppedReply", "ReplyDropProxy", "parse_command", "resp_frame_end"]

Matcher = Callable[[Sequence[bytes]], bool]


def resp_frame_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """Offset just past the one complete RESP2/RESP3 frame starting at `pos`, or None if incomplete.

    A line that does not start with a RESP type byte is an inline command and ends at its CRLF.
    """
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind = buf[pos : pos + 1]
    after = nl + 2
    if kind in (b"$", b"!", b"="):  # bulk string, bulk error, verbatim string
        size = int(buf[pos + 1 : nl])
        if size < 0:
            return after
        end = after + size + 2
        return end if len(buf) >= end else None
    if kind in (b"*", b"~", b">", b"%", b"|"):  # array, set, push, map, attribute
        count = int(buf[pos + 1 : nl])
        count = count * 2 if kind in (b"%", b"|") else count
        for _ in range(max(count, 0)):
            next_pos = resp_frame_end(buf, after)
            if next_pos is None:
                return None
            after = next_pos
        if kind == b"|":  # an attribute map precedes the reply it annotates
            return resp_frame_end(buf, after)
        return after
    return after  # simple string, error, integer, null, double, boolean, big number, or an inline command


def parse_command(frame: bytes) -> list[bytes]:
    """The arguments of one client command frame (a RESP array of bulk strings, or an inline command)."""
    if not frame.startswith(b"*"):
        return frame.split()
    args: list[bytes] = []
    nl = frame.find(b"\r\n")
    pos = nl + 2
    for _ in range(int(frame[1:nl])):
        nl = frame.find(b"\r\n", pos)
        size = int(frame[pos + 1 : nl])
        args.append(frame[nl + 2 : nl + 2 + size])
        pos = nl + 2 + size + 2
    return args


@dataclass(frozen=True, slots=True)
class DroppedReply:
    """A command the server ran whose reply the client never saw."""

    command: list[bytes]
    reply: bytes


def _split_frames(buf: bytearray) -> list[bytes]:
    """Remove and return every complete frame at the front of `buf`."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(buf):
        end = resp_frame_end(buf, pos)
        if end is None:
            break
        frames.append(bytes(buf[pos:end]))
        pos = end
    del buf[:pos]
    return frames


class ReplyDropProxy:
    """A loopback TCP proxy to `upstream_host:upstream_port`; `start()` it, connect to `.url`, `aclose()` it."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.commands: list[list[bytes]] = []
        """Every command that went through, in order, over all connections."""
        self.dropped: list[DroppedReply] = []
        self.fired = asyncio.Event()
        """Set when an armed reply has been dropped."""
        self._matcher: Matcher | None = None
        self._fail_matcher: Matcher | None = None
        self._fail_reply = b""
        self._fail_left = 0
        self.failed: list[list[bytes]] = []
        """Commands answered with the injected error (never sent to the server)."""
        self._skip_errors = True
        self._in_flight = False
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(cls, url: str) -> ReplyDropProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def client(self, **kwargs: Any) -> Redis:
        """A `redis.asyncio.Redis` through the proxy, with redis-py's default retry policy.

        Built from host and port on purpose: in redis-py 8.1 `Redis(host=..., port=...)` retries 10 times
        on `ConnectionError`, but `Redis.from_url(url)` makes connections with `Retry(NoBackoff(), 0)`, so a
        lost reply surfaces as `ConnectionError("Connection closed by server.")` and nothing is re-sent.
        """
        return Redis(host=self.host, port=self.port, **kwargs)

    # --- the fault --------------------------------------------------------------------------------------
    def drop_reply_once(self, match: bytes | Matcher, *, skip_errors: bool = True) -> None:
        """Lose the reply of the next command that `match`es: a command name (case-insensitive) or a predicate
        on the argument list. With `skip_errors`, an error reply is delivered and the trigger stays armed."""
        if isinstance(match, bytes):
            name = match.upper()
            self._matcher = lambda args: bool(args) and args[0].upper() == name
        else:
            self._matcher = match
        self._skip_errors = skip_errors
        self._in_flight = False
        self.fired.clear()

    def fail_next(self, match: bytes | Matcher, *, times: int = 1, error: bytes = b"ERR injected fault") -> None:
        """Answer the next `times` commands that `match` (a name or a predicate) with the error reply
        `-{error}` instead of sending them to the server (a transient failure: nothing ran)."""
        if isinstance(match, bytes):
            name = match.upper()
            self._fail_matcher = lambda args: bool(args) and args[0].upper() == name
        else:
            self._fail_matcher = match
        self._fail_left = times
        self._fail_reply = b"-" + error + b"\r\n"

    def _injects(self, args: list[bytes]) -> bytes | None:
        if self._fail_left <= 0 or self._fail_matcher is None or not self._fail_matcher(args):
            return None
        self._fail_left -= 1
        self.failed.append(args)
        return self._fail_reply

    def seen(self, name: bytes) -> list[list[bytes]]:
        """The commands named `name` (case-insensitive) that went through, in order."""
        return [c for c in self.commands if c and c[0].upper() == name.upper()]

    # --- plumbing ---------------------------------------------------------------------------------------
    async def start(self) -> ReplyDropProxy:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        # Cancel the pumps, not the connection handlers: asyncio's stream callback logs a cancelled handler.
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ReplyDropProxy:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _on_client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        u_writer: asyncio.StreamWriter | None = None
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
            pending: deque[tuple[list[bytes], bool, bytes | None]] = deque()
            pumps = [
                asyncio.create_task(self._client_to_server(c_reader, u_writer, c_writer, pending)),
                asyncio.create_task(self._server_to_client(u_reader, c_writer, pending)),
            ]
            self._pumps.update(pumps)
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                self._pumps.difference_update(pumps)
        except OSError:
            pass
        finally:
            for writer in (c_writer, u_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
            self._connections.discard(task)

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        pending: deque[tuple[list[bytes], bool, bytes | None]],
    ) -> None:
        buf = bytearray()
        while chunk := await reader.read(65536):
            buf += chunk
            out = bytearray()
            for frame in _split_frames(buf):
                args = parse_command(frame)
                self.commands.append(args)
                injected = self._injects(args)
                if injected is not None:
                    pending.append((args, False, injected))  # answered in its turn, never sent
                    continue
                drop = self._matcher is not None and not self._in_flight and self._matcher(args)
                if drop:
                    self._in_flight = True
                pending.append((args, drop, None))
                out += frame
            client.write(_injected_heads(pending))  # no await in between: replies stay in order
            if out:
                writer.write(out)
                await writer.drain()

    async def _server_to_client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pending: deque[tuple[list[bytes], bool, bytes | None]],
    ) -> None:
        buf = bytearray()
        while chunk := await reader.read(65536):
            buf += chunk
            out = bytearray(_injected_heads(pending))
            for frame in _split_frames(buf):
                if frame.startswith(b">") or not pending:
                    out += frame
                    continue
                args, drop, _ = pending.popleft()
                if drop and self._skip_errors and frame[:1] in (b"-", b"!"):
                    self._in_flight = False  # the server did not run it: stay armed for the next match
                    drop = False
                if not drop:
                    out += frame + _injected_heads(pending)
                    continue
                self.dropped.append(DroppedReply(args, frame))
                self._matcher = None
                self._in_flight = False
                self.fired.set()
                writer.write(out)
                await writer.drain()
                return  # the caller closes the client connection: the reply is lost
            writer.write(out)
            await writer.drain()


def _injected_heads(pending: deque[tuple[list[bytes], bool, bytes | None]]) -> bytes:
    """Pop the injected replies now at the head of `pending` (every reply before them was sent)."""
    out = b""
    while pending and pending[0][2] is not None:
        out += pending.popleft()[2] or b""
    return out
