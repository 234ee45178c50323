"""In-process workflow side: `hitl.client()` for scripts, notebooks and agent loops that run the `Hitl` in
the same process (SPEC §11). No engine, no network:

- requests go straight to `hitl.asgi` (`call_asgi`), with the `Hitl`'s own secret;
- suspensions are futures in the `Hitl`'s `LocalWaits`, resolved by that `Hitl` the moment a decision (or
  a timeout) is recorded; tokens are `inproc:<uuid>`; tokens it does not own go to its resolver as usual;
- `sleep` is `asyncio.sleep`.

NOT durable: a wait lives in this process's memory and ends with it. With a `StreamState`, what survives
is the request: a restarted script that calls `wait_for_human(pending)` with a `Pending` it saved gets a
decision made while it was down (the stored record is checked first), and a wait polls the state now and
then, so a decision recorded by another process (another replica's inbox) is seen too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..client import HitlClient, HitlRequest, HitlResponse, create_hitl_client
from ..results import HumanResult
from ..state import State
from .resolvers import Resolver, accepts_idempotency_key

if TYPE_CHECKING:
    from .hitl import Hitl

__all__ = [
    "INPROCESS_PREFIX",
    "INPROCESS_URL",
    "InProcessPrimitives",
    "LocalWaits",
    "LocallyRouted",
    "call_asgi",
    "in_process_client",
]

INPROCESS_PREFIX = "inproc:"
INPROCESS_URL = "http://hitl.inprocess"

Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[MutableMapping[str, Any]]], Callable[..., Awaitable[None]]],
    Awaitable[None],
]


class LocalWaits:
    """Suspensions this process resolves itself: token -> future of the result."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[HumanResult]] = {}

    def register(self, token: str) -> asyncio.Future[HumanResult]:
        future = self._futures.get(token)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._futures[token] = future
            future.add_done_callback(lambda done: self._forget(token, done))
        return future

    def _forget(self, token: str, future: asyncio.Future[HumanResult]) -> None:
        if self._futures.get(token) is future:
            del self._futures[token]

    def owns(self, token: str) -> bool:
        return token in self._futures

    def resolve(self, token: str, result: HumanResult) -> bool:
        """Complete the wait on `token`; False if this process has none."""
        future = self._futures.get(token)
        if future is None:
            return False
        if not future.done():
            future.set_result(result)
        return True

    def __len__(self) -> int:
        return len(self._futures)


class LocallyRouted:
    """The resolver a `Hitl` resumes with: its own waits first; in-process tokens of another process (or
    of a wait that is gone) are done (there is nothing to resume); everything else goes to `inner`."""

    def __init__(self, local: LocalWaits, inner: Resolver) -> None:
        self._local = local
        self.inner = inner
        self._keyed = accepts_idempotency_key(inner.resolve)

    async def resolve(self, token: str, result: HumanResult, *, idempotency_key: str | None = None) -> None:
        """The idempotency key goes on to `inner` when its `resolve` takes one (see `resolvers.py`)."""
        if self._local.resolve(token, result) or token.startswith(INPROCESS_PREFIX):
            return
        if self._keyed:
            await self.inner.resolve(token, result, idempotency_key=idempotency_key)  # type: ignore[call-arg]
        else:
            await self.inner.resolve(token, result)


async def call_asgi(app: Asgi, request: HitlRequest) -> HitlResponse:
    """Serve one `HitlRequest` with an ASGI app, in process."""
    parts = urlsplit(request.url)
    body = request.body.encode()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": parts.scheme or "http",
        "path": parts.path or "/",
        "raw_path": (parts.path or "/").encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 0),
        "server": (parts.hostname or "hitl.inprocess", parts.port or 80),
    }
    sent = False
    answered = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:  # like a real client: connected until the answer is complete, then gone
            await answered.wait()
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    chunks: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                answered.set()

    await app(scope, receive, send)
    return HitlResponse(status=status, ok=200 <= status < 300, body=b"".join(chunks).decode())


class _Wait:
    """An awaitable that starts its coroutine only when awaited (an unawaited wait leaves no warning)."""

    def __init__(self, start: Callable[[], Coroutine[Any, Any, HumanResult]]) -> None:
        self._start = start

    def __await__(self) -> Generator[Any, None, HumanResult]:
        return self._start().__await__()


class InProcessPrimitives:
    """`Primitives` for a `Hitl` in this process. `poll_interval`: seconds between looks at the stored
    record while waiting (for decisions recorded by other processes); None never looks."""

    def __init__(
        self,
        state: State,
        local: LocalWaits,
        app: Asgi,
        *,
        prefix: str = INPROCESS_PREFIX,
        poll_interval: float | None = None,
    ) -> None:
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError("poll_interval must be positive (or None)")
        self._state = state
        self._local = local
        self._app = app
        self._prefix = prefix
        self._poll = poll_interval

    def suspend(self) -> tuple[str, Awaitable[HumanResult]]:
        token = f"{self._prefix}{uuid.uuid4()}"
        future = self._local.register(token)
        return token, _Wait(lambda: self._wait(token, future, check_first=False))

    def reattach(self, token: str) -> Awaitable[HumanResult]:
        """The wait of a token minted earlier (a `Pending` saved before a restart): the stored record first."""
        future = self._local.register(token)
        return _Wait(lambda: self._wait(token, future, check_first=True))

    async def _stored(self, token: str) -> HumanResult | None:
        record = await self._state.find_by_token(token)
        if record is not None and record.status == "resolved":
            return record.result
        return None

    async def _wait(self, token: str, future: asyncio.Future[HumanResult], *, check_first: bool) -> HumanResult:
        if check_first and not future.done() and (stored := await self._stored(token)) is not None:
            self._local.resolve(token, stored)
        while self._poll is not None and not future.done():
            await asyncio.wait([future], timeout=self._poll)
            if not future.done() and (stored := await self._stored(token)) is not None:
                self._local.resolve(token, stored)
        return await future

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def request(self, request: HitlRequest) -> HitlResponse:
        return await call_asgi(self._app, request)

    def now(self) -> datetime:
        return datetime.now(UTC)


def in_process_client(hitl: Hitl, *, poll_interval: float | None = None) -> HitlClient:
    """See `Hitl.client`."""
    primitives = InProcessPrimitives(hitl.state, hitl.local_waits, hitl.asgi, poll_interval=poll_interval)
    return create_hitl_client(primitives, url=INPROCESS_URL, secret=hitl._secret or "")
