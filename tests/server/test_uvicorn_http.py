"""`CoalescingHttpToolsProtocol`: uvicorn's httptools protocol sending each answer in one write.

Through a real uvicorn server on a raw socket (keep-alive, pipelining, a streamed answer, an answer
given before the body arrived), and the transport wrapper on a real event-loop transport.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from hitl_streams.server import Hitl

from .support import API, APPROVE_DENY, served

pytest.importorskip("httptools")
from hitl_streams.server.uvicorn_http import CoalescingHttpToolsProtocol, CoalescingTransport


def _requests_over_one_connection(port: int, raw: bytes, answers: int) -> list[tuple[bytes, dict[str, str], bytes]]:
    """Send `raw` at once, read `answers` HTTP answers (content-length framed): (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        buffer = b""
        replies: list[tuple[bytes, dict[str, str], bytes]] = []
        while len(replies) < answers:
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            status, *lines = head.split(b"\r\n")
            headers = {k.decode().lower(): v.decode().strip() for k, v in (line.split(b":", 1) for line in lines)}
            length = int(headers["content-length"])
            while len(buffer) < length:
                buffer += sock.recv(65536)
            replies.append((status, headers, buffer[:length]))
            buffer = buffer[length:]
        return replies


def _post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_answers_on_one_keep_alive_connection_pipelined() -> None:
    hitl = Hitl(secret="s")
    async with served(hitl.asgi, http=CoalescingHttpToolsProtocol) as url:
        port = int(url.rsplit(":", 1)[1])
        bodies = [json.dumps({"token": f"t{i}", "message": "Go?", "actions": APPROVE_DENY}).encode() for i in range(3)]
        raw = b"".join(_post(f"{API}/requests", body) for body in bodies)  # three requests in one packet
        replies = await asyncio.to_thread(_requests_over_one_connection, port, raw, 3)
        assert [status for status, _, _ in replies] == [b"HTTP/1.1 201 Created"] * 3
        ids = [json.loads(body)["id"] for _, _, body in replies]
        assert len(set(ids)) == 3
        timeout = _post(f"{API}/requests/{ids[1]}/timeout", b"{}")
        [(status, headers, body)] = await asyncio.to_thread(_requests_over_one_connection, port, timeout, 1)
        assert status == b"HTTP/1.1 200 OK" and headers["content-type"] == "application/json"
        result = json.loads(body)["result"]
        assert (result["type"], result["id"]) == ("TIMED_OUT", ids[1])


async def test_a_streamed_answer_is_sent_as_it_is_written() -> None:
    """Writes are held for one loop iteration at most: the first chunk of an answer still being written
    reaches the client while the app waits."""
    release = asyncio.Event()

    async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"last\n"})

    async with served(streaming, http=CoalescingHttpToolsProtocol) as url:
        port = int(url.rsplit(":", 1)[1])

        def first_chunk() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                received = b""
                while b"first" not in received:
                    received += sock.recv(65536)
                return received

        received = await asyncio.to_thread(first_chunk)
        release.set()
    assert received.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in received


async def test_an_answer_before_the_body_is_sent_before_the_connection_closes() -> None:
    """A 413 for a declared body too large is written, then the connection closed: the close sends
    what was held."""
    hitl = Hitl(secret="s", max_body_bytes=10)
    async with served(hitl.asgi, http=CoalescingHttpToolsProtocol) as url:
        port = int(url.rsplit(":", 1)[1])

        def declared_too_large() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                head = f"POST {API}/requests HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s\r\n"
                sock.sendall(head.encode() + b"Content-Length: 1000\r\n\r\n")
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
                return received

        reply = await asyncio.to_thread(declared_too_large)
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {"error": "Request body too large (limit 10 bytes)"}


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.reads = 0

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.reads += 1


async def test_writes_in_one_loop_iteration_leave_in_one_write() -> None:
    loop = asyncio.get_running_loop()
    sink = _Sink()
    server = await loop.create_server(lambda: sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    writes: list[bytes] = []
    real_write = transport.write

    def counting_write(data: Any) -> None:
        writes.append(bytes(data))
        real_write(data)

    transport.write = counting_write  # type: ignore[method-assign]
    coalescing = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
    coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    coalescing.write(b"")
    coalescing.write(b"{}")
    assert writes == [] and coalescing.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    coalescing.write(b"held until closing")
    coalescing.close()
    assert writes[-1] == b"held until closing" and coalescing.is_closing()
    assert coalescing.get_extra_info("peername")[1] == port  # the rest is the transport's
    for _ in range(100):
        if sink.data.endswith(b"closing"):
            break
        await asyncio.sleep(0.01)
    assert sink.data == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}held until closing"
    server.close()
    await server.wait_closed()
