"""The State contract suite (hitl_streams.testing.contract) against StreamState on a real Redis,
with both reply decodings a redis-py client can have."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from hitl_streams import State, StreamState
from hitl_streams.testing.contract import StateContract

pytestmark = pytest.mark.redis


class TestStreamState(StateContract):
    @pytest_asyncio.fixture
    async def state(self, redis: Redis, table_name: str) -> AsyncIterator[State]:
        yield StreamState(redis, table_name=table_name)


class TestStreamStateDecodedReplies(StateContract):
    @pytest_asyncio.fixture
    async def state(self, redis_url: str, redis: Redis, table_name: str) -> AsyncIterator[State]:
        # `redis` is requested for its teardown, which deletes this test's keys.
        client: Redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            yield StreamState(client, table_name=table_name)
        finally:
            await client.aclose()
