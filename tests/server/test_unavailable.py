"""Redis unavailable (stopped, or restarted and still `LOADING` its dataset): the HTTP API answers 503 with
`Retry-After`, never 500, `/healthz` says so, and both recover by themselves once Redis is back.

A real `redis-server` with an append-only file, started by the test infrastructure: killed, then restarted
on the same port and AOF with a per-key load delay, so it answers `-LOADING` for a few seconds, as a big
AOF does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hitl_streams import InMemoryState, StreamState
from hitl_streams.errors import StateUnavailableError
from hitl_streams.server import Hitl
from hitl_streams.streams.autobatch import AutoBatchRedis
from hitl_streams.streams.connect import connect
from hitl_streams.testing._servers import ServerProcess, resp_command
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY

# An AOF (fsync'd on every write, no snapshots besides its RDB base); a 100 µs delay per key while
# loading that base; clients served (with -LOADING) every 1 KiB of load.
_SLOW_LOADING = [
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--key-load-delay",
    "100",
    "--loading-process-events-interval-bytes",
    "1024",
]
_FILLER_KEYS = 30_000  # about 3 s of LOADING at 100 µs a key


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(_SLOW_LOADING, name="loading")
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[Redis]:
    redis_client = connect(server.url, decode_responses=True)
    try:
        yield redis_client
    finally:
        await redis_client.aclose()


@pytest.fixture
async def api(client: Redis) -> AsyncIterator[httpx.AsyncClient]:
    state = StreamState(client, table_name="t_unavailable")
    hitl = Hitl(state=state, adapters=[RecordingAdapter("chat")], secret="s")
    transport = httpx.ASGITransport(app=hitl.asgi)
    headers = {"authorization": "Bearer s"}
    async with hitl, httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
        yield http


def _ping(server: ServerProcess) -> bytes:
    try:
        return resp_command(server.port, "PING", timeout=0.5)
    except OSError:
        return b"(down)"


def _fill(server: ServerProcess) -> None:
    """Enough keys, in the AOF's RDB base (the key load delay applies to it), that loading them again
    takes seconds."""
    script = f"for i=1,{_FILLER_KEYS} do redis.call('SET', 'filler:' .. i, 'x') end return 1"
    assert resp_command(server.port, "EVAL", script, "0", timeout=10) == b":1"
    assert resp_command(server.port, "BGREWRITEAOF", timeout=10).startswith(b"+")
    deadline = time.monotonic() + 30
    while True:
        info = resp_command(server.port, "INFO", "persistence")
        if b"aof_rewrite_in_progress:0" in info and b"aof_rewrite_scheduled:0" in info:
            return
        assert time.monotonic() < deadline, "the AOF rewrite did not finish"
        time.sleep(0.02)


async def _restart_loading(server: ServerProcess) -> None:
    """Kill the server and start it again on its data; return once it answers `-LOADING`."""
    await asyncio.to_thread(server.kill)
    server.restart(wait=False)
    deadline = time.monotonic() + 10
    while not _ping(server).startswith(b"-LOADING"):
        assert time.monotonic() < deadline, f"the server never answered LOADING: {_ping(server)!r}"
        await asyncio.sleep(0.005)


async def _wait_until_up(server: ServerProcess) -> None:
    deadline = time.monotonic() + 30
    while _ping(server) != b"+PONG":
        assert time.monotonic() < deadline, "the server did not finish loading"
        await asyncio.sleep(0.05)


def _create(token: str) -> dict[str, object]:
    return {"token": token, "message": "Deploy?", "actions": APPROVE_DENY}


async def _healthz(api: httpx.AsyncClient, status: int, within: float = 5.0) -> httpx.Response:
    """`/healthz` until it answers `status` (it caches its answer for a second)."""
    deadline = time.monotonic() + within
    while True:
        response = await api.get("/healthz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "state unavailable, retry later"}
    assert int(response.headers["retry-after"]) >= 1


async def test_loading_under_load_is_503_with_retry_after_and_recovers(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    assert (await api.post(f"{API}/requests", json=_create("before"))).status_code == 201
    assert (await api.get("/healthz")).status_code == 200
    _fill(server)
    await _restart_loading(server)

    # Twelve creates at once, again and again while Redis loads: each is a 503 (or, near the end of the
    # load, a 201), never a 500 and never a `TypeError` from an error reply taken as a value.
    statuses: list[int] = []
    round_ = 0
    while _ping(server).startswith(b"-LOADING"):
        replies = await asyncio.gather(
            *(api.post(f"{API}/requests", json=_create(f"load-{round_}-{i}")) for i in range(12))
        )
        for reply in replies:
            if reply.status_code == 503:
                _assert_unavailable(reply)
        statuses += [reply.status_code for reply in replies]
        round_ += 1
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses

    await _wait_until_up(server)
    after = await api.post(f"{API}/requests", json=_create("after"))  # the same app, not restarted
    assert after.status_code == 201, after.text
    assert (await _healthz(api, 200)).status_code == 200


async def test_healthz_is_503_while_loading(server: ServerProcess, api: httpx.AsyncClient) -> None:
    _fill(server)
    await _restart_loading(server)
    down = await _healthz(api, 503, within=1.5)
    _assert_unavailable_health(down)
    await _wait_until_up(server)
    up = await _healthz(api, 200)
    assert (up.status_code, up.json()) == (200, {"ok": True, "state": "redis-streams"})


def _assert_unavailable_health(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"ok": False, "state": "redis-streams", "error": "state unavailable, retry later"}
    assert "retry-after" in response.headers


async def test_redis_stopped_is_503_and_the_app_recovers_when_it_is_back(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    created = await api.post(f"{API}/requests", json=_create("first"))
    assert created.status_code == 201
    request_id = created.json()["id"]
    await asyncio.to_thread(server.kill)

    for path, body in [
        (f"{API}/requests", _create("while-down")),
        (f"{API}/batches", {"items": [{"token": "b1", "message": "m"}], "actions": APPROVE_DENY}),
        (f"{API}/notifications", {"message": "fyi"}),
        (f"{API}/requests/{request_id}/timeout", None),
        (f"{API}/requests/{request_id}/remind", {}),
    ]:
        _assert_unavailable(await api.post(path, json=body))
    _assert_unavailable_health(await _healthz(api, 503))

    await asyncio.to_thread(server.restart)
    again = await api.post(f"{API}/requests", json=_create("back"))
    assert again.status_code == 201, again.text
    up = await _healthz(api, 200)
    assert up.status_code == 200, up.text


async def test_an_error_reply_on_the_batching_path_is_raised_never_returned(server: ServerProcess) -> None:
    """`LOADING` is a `BusyLoadingError`, which redis-py derives from `ConnectionError`: the batching path
    used to hand it back as a value, so a lease `SET NX` "succeeded" and an `XACK` counted as done."""
    # No retries: the error reply itself must surface, as an exception.
    plain = Redis(port=server.port, decode_responses=True, retry=Retry(NoBackoff(), 0))
    batched = AutoBatchRedis.wrap(plain)
    state = StreamState(plain, table_name="t_errors")
    try:
        await state.ensure_schema()
        assert await state.acquire_lease("deliver:x", 1000) is not None
        _fill(server)
        await _restart_loading(server)
        with pytest.raises(redis.exceptions.BusyLoadingError):
            await batched.execute_command("XACK", "s", "g", "1-0")
        with pytest.raises(redis.exceptions.BusyLoadingError):
            await state.acquire_lease("deliver:y", 1000)
        with pytest.raises(redis.exceptions.BusyLoadingError):
            await state.renew_lease("deliver:x", "token", 1000)
        await _wait_until_up(server)
        assert await state.acquire_lease("deliver:y", 1000) is not None
    finally:
        await batched.aclose()
        await plain.aclose()


async def test_loading_is_retried_like_a_lost_connection(server: ServerProcess) -> None:
    """With the retry policy `connect()` sets, a `LOADING` reply is retried with backoff, bounded: it
    raises once the retries are spent, and the next call after loading succeeds."""
    redis_client = connect(server.url, decode_responses=True)
    batched = AutoBatchRedis.wrap(redis_client)
    try:
        await batched.execute_command("SET", "k", "v")
        _fill(server)
        await _restart_loading(server)
        with pytest.raises(redis.exceptions.BusyLoadingError):  # bounded: it gives up while Redis loads
            await batched.execute_command("GET", "k")
        await _wait_until_up(server)
        assert await batched.execute_command("GET", "k") == "v"
    finally:
        await batched.aclose()
        await redis_client.aclose()


class FailingState:
    """A real in-memory state whose lookups raise `error` (what a State on an unreachable Redis raises)."""

    def __init__(self, error: BaseException) -> None:
        self._inner = InMemoryState()
        self.error = error

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def find_by_token(self, token: str) -> object:
        raise self.error

    async def create(self, record: object) -> object:
        raise self.error

    async def get(self, request_id: str) -> object:
        raise self.error


UNAVAILABLE_ERRORS = [
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
    redis.exceptions.ClusterDownError("The cluster is down"),
    redis.exceptions.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
    redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    redis.exceptions.SlotNotCoveredError("Slot 1234 is not covered by the cluster"),
    StateUnavailableError("the state is down"),
]


@pytest.mark.parametrize("error", UNAVAILABLE_ERRORS, ids=lambda e: type(e).__name__)
async def test_every_kind_of_unavailable_state_is_a_503(error: BaseException) -> None:
    hitl = Hitl(state=FailingState(error), adapters=[RecordingAdapter("chat")], secret="")  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
        _assert_unavailable(await http.post(f"{API}/requests", json=_create("t")))
        _assert_unavailable(await http.post(f"{API}/requests/some-id/timeout"))


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), redis.exceptions.ResponseError("WRONGTYPE"), redis.exceptions.AuthenticationError("bad")],
    ids=lambda e: type(e).__name__,
)
async def test_a_bug_or_a_misconfiguration_stays_a_500(error: BaseException) -> None:
    hitl = Hitl(state=FailingState(error), adapters=[RecordingAdapter("chat")], secret="")  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
        response = await http.post(f"{API}/requests", json=_create("t"))
    assert (response.status_code, response.json()) == (500, {"error": "Internal server error"})
    assert "retry-after" not in response.headers
