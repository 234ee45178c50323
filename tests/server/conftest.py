"""Fixtures for the server tests: a `state` (parametrized, so a second State can join), a recording
adapter, a resolver that records what it resumed, a started `Hitl`, and an HTTP client on its ASGI app.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import cast

import httpx
import pytest

from hitl_streams import InMemoryState, State
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.testing.recording import RecordingAdapter

from .support import Resumed, YieldingState, free_port

# "yielding" is InMemoryState suspending on every call, so that races interleave as over a network.
# StreamState joins here once it is merged ("redis-streams").
STATE_KINDS = ["memory", "yielding"]


@pytest.fixture(params=STATE_KINDS)
def state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return InMemoryState()
    if request.param == "yielding":
        return cast(State, YieldingState(InMemoryState()))
    raise AssertionError(f"unknown state kind {request.param}")


@pytest.fixture
def resumed() -> Resumed:
    return Resumed()


@pytest.fixture
def chat() -> RecordingAdapter:
    return RecordingAdapter("chat")


@pytest.fixture
async def hitl(state: State, resumed: Resumed, chat: RecordingAdapter) -> AsyncIterator[Hitl]:
    server = Hitl(
        state=state,
        resolver=CallbackResolver(resumed),
        adapters=[chat],
        secret="",
        retry=RetryPolicy(initial=0.01, maximum=0.05, jitter=0),
    )
    async with server:
        yield server


@pytest.fixture
async def client(hitl: Hitl) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=hitl.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as http:
        yield http


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the stream-driven tests: `HITL_TEST_REDIS_URL`, else a `redis-server` from PATH.

    (The project-wide Redis fixture replaces this one once it lands in main.)
    """
    url = os.environ.get("HITL_TEST_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        pytest.fail("No Redis: set HITL_TEST_REDIS_URL or put redis-server (or valkey-server) on PATH")
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(data)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
