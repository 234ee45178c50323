"""Fixtures for the server tests: a `state` (parametrized, so a second State can join), a recording
adapter, a resolver that records what it resumed, a started `Hitl`, and an HTTP client on its ASGI app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest

from hitl_streams import InMemoryState, State, StreamState
from hitl_streams.server import CallbackResolver, Hitl, ResumeQueue, RetryPolicy
from hitl_streams.server.stream_resume import StreamResumeQueue
from hitl_streams.testing.recording import RecordingAdapter

from .support import Resumed, YieldingState

# "yielding" is InMemoryState suspending on every call, so that races interleave as over a network;
# "redis-streams" is StreamState on the plugin's real Redis (and resumption driven by its stream).
STATE_KINDS = ["memory", "yielding", "redis-streams"]


@pytest.fixture(params=STATE_KINDS)
def state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return InMemoryState()
    if request.param == "yielding":
        return cast(State, YieldingState(InMemoryState()))
    if request.param == "redis-streams":
        redis = request.getfixturevalue("redis")
        return StreamState(redis, table_name=request.getfixturevalue("table_name"))
    raise AssertionError(f"unknown state kind {request.param}")


def resume_queue_for(state: State) -> ResumeQueue | None:
    """A quicker-to-stop stream queue for tests (it wakes every 50 ms instead of 250 ms)."""
    if isinstance(state, StreamState):
        return StreamResumeQueue.for_state(state, block_ms=50)
    return None


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
        resume_queue=resume_queue_for(state),
    )
    async with server:
        yield server


@pytest.fixture
async def client(hitl: Hitl) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=hitl.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as http:
        yield http
