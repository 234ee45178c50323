"""uvicorn's httptools protocol with one socket write per response, for `hitl-streams serve`.

uvicorn writes a response's status line and headers, then its body, as two `transport.write()` calls, and
uvloop sends each at once: two `write()` system calls and two TCP segments per answer, each paying the
loopback stack's cost in the server's process. Here the protocol's transport is wrapped so that what one
loop iteration writes goes out in one `write()` at the end of it: the headers and body of an answer, or
several pipelined answers. A streamed response (the web inbox's events) is still sent as it is written,
one iteration later at most.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]


class CoalescingTransport:
    """Delegates to `transport`, except that writes made in one loop iteration are sent as one."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()  # an answer written just before closing (`connection: close`) still goes out
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending or ()))

    def __getattr__(self, name: str) -> Any:  # the rest (extra info, reading, set_protocol) as is
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` on a `CoalescingTransport` (pass the class as uvicorn's `http`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A duck-typed transport: it has every method uvicorn calls, and passes the rest on.
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
