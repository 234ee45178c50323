"""connect(): the clients `serve` and the CLI make retry a write whose reply was lost, and StreamState
turns the re-sent write into its first outcome (one event)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from hitl_streams import NewHumanRequest, StreamState, actions
from hitl_streams.streams.connect import RETRIES, connect
from hitl_streams.testing.proxy import ReplyDropProxy

pytestmark = pytest.mark.redis


def commit_script(args: Sequence[bytes]) -> bool:
    return bool(args) and args[0].upper() in (b"EVALSHA", b"EVAL")


def test_plain_from_url_would_not_retry_but_connect_does() -> None:
    assert Redis.from_url("redis://127.0.0.1:1").get_retry() is None  # why connect() exists
    retry = connect("redis://127.0.0.1:1").get_retry()
    assert retry is not None and retry.get_retries() == RETRIES


@pytest.mark.parametrize("autobatch", [True, False])
async def test_a_lost_reply_through_a_connect_client_writes_once(
    redis_proxy: ReplyDropProxy, redis: Redis, table_name: str, autobatch: bool
) -> None:
    client = connect(redis_proxy.url)
    try:
        state = StreamState(client, table_name=table_name, autobatch=autobatch)
        await state.ensure_schema()
        redis_proxy.drop_reply_once(match=commit_script)
        await state.create(
            NewHumanRequest(id="r", token="t", channel="inbox", message="m", actions=actions().approve().build())
        )
        assert redis_proxy.fired.is_set()
        assert await redis.xlen(state.keys.events) == 1
        assert (await state.get("r")) is not None
    finally:
        await client.aclose()


def test_a_malformed_url_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        connect("http://not-redis")
