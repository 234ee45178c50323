"""ReplyDropProxy: the server runs the write, the reply is lost, redis-py re-sends it: it runs twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hitl_streams.testing.proxy import ReplyDropProxy, parse_command, resp_frame_end

# The infra fixtures, until the hitl_streams plugin registers them; then this line can go.


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    """A fresh key name; it and `{key}:*` are deleted afterwards (the session Redis may be borrowed)."""
    name = f"infra:proxy:{uuid.uuid4().hex}"
    yield name
    client = Redis.from_url(redis_url)
    try:
        await client.delete(name, *[k async for k in client.scan_iter(match=f"{name}:*")])
    finally:
        await client.aclose()


async def test_a_lost_incr_reply_makes_redis_py_apply_it_twice(redis_proxy: ReplyDropProxy, key: str) -> None:
    client = redis_proxy.client()
    try:
        redis_proxy.drop_reply_once(match=b"INCRBY")
        assert await client.incr(key) == 2  # one client call ...
        assert redis_proxy.fired.is_set()
        assert [d.command for d in redis_proxy.dropped] == [[b"INCRBY", key.encode(), b"1"]]
        assert redis_proxy.dropped[0].reply == b":1\r\n"  # ... the server ran it and answered 1 ...
        assert redis_proxy.seen(b"INCRBY") == [[b"INCRBY", key.encode(), b"1"]] * 2  # ... and the retry re-sent it.
        assert int(await client.get(key) or 0) == 2
        # Once: the next INCR goes through untouched.
        assert await client.incr(key) == 3
        assert len(redis_proxy.dropped) == 1
    finally:
        await client.aclose()


async def test_a_lost_set_reply_is_retried_and_reports_success(redis_proxy: ReplyDropProxy, key: str) -> None:
    client = redis_proxy.client()
    try:
        redis_proxy.drop_reply_once(match=b"set")  # the name matches case-insensitively
        assert await client.set(key, "v", nx=True) is None  # the re-sent SET NX found the key: "not set"
        assert await client.get(key) == b"v"
        assert len(redis_proxy.seen(b"SET")) == 2
    finally:
        await client.aclose()


async def test_evalsha_is_run_twice_and_noscript_errors_pass_through(redis_proxy: ReplyDropProxy, key: str) -> None:
    client = redis_proxy.client()
    try:
        script = client.register_script(f"return redis.call('INCR', KEYS[1]) -- {uuid.uuid4().hex}")
        redis_proxy.drop_reply_once(match=b"EVALSHA")
        # redis-py: EVALSHA -> NOSCRIPT (delivered, the trigger stays armed) -> SCRIPT LOAD -> EVALSHA (runs,
        # reply dropped) -> reconnect -> EVALSHA again (runs again).
        assert await script(keys=[key]) == 2
        assert len(redis_proxy.seen(b"EVALSHA")) == 3
        assert len(redis_proxy.seen(b"SCRIPT")) == 1
        assert redis_proxy.dropped[0].reply == b":1\r\n"
    finally:
        await client.aclose()


async def test_multi_exec_is_run_twice(redis_proxy: ReplyDropProxy, key: str) -> None:
    client = redis_proxy.client()
    try:
        redis_proxy.drop_reply_once(match=b"EXEC")
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.rpush(f"{key}:log", "x")
            assert await pipe.execute() == [2, 2]
        assert len(redis_proxy.seen(b"MULTI")) == 2
    finally:
        await client.aclose()


async def test_a_predicate_selects_the_command(redis_proxy: ReplyDropProxy, key: str) -> None:
    client = redis_proxy.client()
    try:
        redis_proxy.drop_reply_once(match=lambda args: args[:1] == [b"RPUSH"] and args[1].endswith(b":b"))
        await client.rpush(f"{key}:a", "x")
        await client.rpush(f"{key}:b", "x")
        assert await client.llen(f"{key}:a") == 1
        assert await client.llen(f"{key}:b") == 2
    finally:
        await client.aclose()


async def test_from_url_clients_do_not_retry_so_the_loss_surfaces(redis_proxy: ReplyDropProxy, key: str) -> None:
    client = Redis.from_url(redis_proxy.url)  # redis-py 8.1: Retry(NoBackoff(), 0) for URL-built pools
    try:
        redis_proxy.drop_reply_once(match=b"INCRBY")
        with pytest.raises(RedisConnectionError):
            await client.incr(key)
        assert int(await client.get(key) or 0) == 1  # the server ran it once; nobody re-sent it
    finally:
        await client.aclose()


def test_resp_frames_are_delimited_in_both_directions() -> None:
    assert resp_frame_end(b"+OK\r\n") == 5
    assert resp_frame_end(b"$5\r\nhel") is None
    assert resp_frame_end(b"$-1\r\n:1\r\n") == 5
    assert resp_frame_end(b"*2\r\n$1\r\na\r\n:1\r\n") == 15
    assert resp_frame_end(b"*2\r\n$1\r\na\r\n") is None
    assert resp_frame_end(b"%1\r\n+k\r\n:1\r\n") == 12  # RESP3 map
    assert resp_frame_end(b"|1\r\n+k\r\n:1\r\n+OK\r\n") == 17  # attribute, then the reply
    assert resp_frame_end(b"|1\r\n+k\r\n:1\r\n") is None
    assert resp_frame_end(b">2\r\n+a\r\n+b\r\n") == 12  # push
    assert resp_frame_end(b"PING\r\n") == 6  # inline
    assert parse_command(b"*2\r\n$3\r\nGET\r\n$4\r\nk\r\nx\r\n") == [b"GET", b"k\r\nx"]
    assert parse_command(b"PING now\r\n") == [b"PING", b"now"]
