"""The client over a real HTTP connection: `hitl.asgi` under uvicorn on a loopback port, the client's
requests sent with httpx, a decision resuming the wait through a `CallbackResolver` (a webhook's stand-in)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest

from hitl_streams import CallbackResolver, Hitl, HumanResult, Resolved, TimedOut, actions
from hitl_streams.client import HitlHttpError, HitlRequest, HitlResponse, create_hitl_client, remind
from hitl_streams.testing import RecordingAdapter
from tests.server.support import served


class HttpEngine:
    """Futures for suspensions, real (short) sleeps, httpx for requests."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.waits: dict[str, asyncio.Future[HumanResult]] = {}
        self.ids = itertools.count(1)

    def suspend(self) -> tuple[str, Awaitable[HumanResult]]:
        token = f"http-engine:{next(self.ids)}"
        self.waits[token] = asyncio.get_running_loop().create_future()
        return token, self.waits[token]

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def request(self, request: HitlRequest) -> HitlResponse:
        response = await self.http.request(request.method, request.url, headers=request.headers, content=request.body)
        return HitlResponse(response.status_code, response.is_success, response.text)

    async def resume(self, token: str, result: HumanResult) -> None:
        future = self.waits.get(token)
        if future is not None and not future.done():
            future.set_result(result)


@pytest.fixture
async def engine() -> AsyncIterator[HttpEngine]:
    async with httpx.AsyncClient() as http:
        yield HttpEngine(http)


async def test_request_remind_decide_over_http(engine: HttpEngine) -> None:
    chat = RecordingAdapter("chat")
    hitl = Hitl(resolver=CallbackResolver(engine.resume), adapters=[chat], secret="over-the-wire")
    async with served(hitl.asgi) as base:
        url = base + "/"  # a base URL with a trailing slash, as users paste it
        client = create_hitl_client(engine, url=url, secret="over-the-wire")
        pending = await client.request_human(message="Deploy?", actions=actions().approve().deny().build())
        waiting = asyncio.ensure_future(
            client.wait_for_human(pending, timeout="1h", reminders=[remind.after(0.05, message="ping")])
        )
        for _ in range(500):
            if any(call.method == "notify" for call in chat.calls):
                break
            await asyncio.sleep(0.01)
        decided = await hitl.inbox.resolve(pending.id, action_id="approve")
        assert await asyncio.wait_for(waiting, 5) == decided
        assert isinstance(decided, Resolved)
        assert [c.args[0].message for c in chat.calls if c.method == "notify"] == ["ping"]

        timed_out = await client.wait_for_human(message="Again?", actions=actions().approve().build(), timeout=0.05)
        assert isinstance(timed_out, TimedOut)

        with pytest.raises(HitlHttpError) as caught:
            await create_hitl_client(engine, url=url, secret="wrong").notify(message="x")
        assert caught.value.status == 401
