"""Your own engine: the three primitives, and the resolver that resumes what `suspend` suspended."""

import asyncio
import itertools
import secrets
from collections.abc import Awaitable

import httpx

from hitl_streams import CallbackResolver, Hitl, HumanResult, actions
from hitl_streams.client import HitlRequest, HitlResponse, create_hitl_client


class AsyncioEngine:
    """Plain asyncio: futures for suspensions, asyncio.sleep for timers, httpx for HTTP. Not durable;
    a real engine records each step so that a restarted workflow replays instead of redoing it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.waits: dict[str, asyncio.Future[HumanResult]] = {}
        self.ids = itertools.count(1)

    def suspend(self) -> tuple[str, Awaitable[HumanResult]]:
        token = f"my-engine:{next(self.ids)}"
        self.waits[token] = asyncio.get_running_loop().create_future()
        return token, self.waits[token]

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def request(self, request: HitlRequest) -> HitlResponse:
        response = await self.http.request(request.method, request.url, headers=request.headers, content=request.body)
        return HitlResponse(status=response.status_code, ok=response.is_success, body=response.text)

    async def resume(self, token: str, result: HumanResult) -> None:
        """What the server's resolver calls (a webhook handler, in a real deployment)."""
        self.waits.pop(token).set_result(result)


async def main() -> None:
    # In production the server runs elsewhere (`hitl-streams serve`) and httpx talks to its URL.
    shared = secrets.token_urlsafe()  # HITL_SECRET: the same on the server and in the workflows
    engine = AsyncioEngine(httpx.AsyncClient())
    hitl = Hitl(resolver=CallbackResolver(engine.resume), secret=shared)
    engine.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi))
    client = create_hitl_client(engine, url="http://hitl.local", secret=shared)
    async with hitl:
        pending = await client.request_human(message="Rotate the keys?", actions=actions().approve().build())
        await hitl.inbox.resolve(pending.id, action_id="approve")  # a reviewer decides
        result = await client.wait_for_human(pending, timeout="1h")
        print(result.__class__.__name__, result.id == pending.id)
    await engine.http.aclose()


asyncio.run(main())
