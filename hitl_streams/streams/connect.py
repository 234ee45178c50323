"""Making redis-py clients for our own entry points (`serve`, the operator CLI).

`Redis.from_url()` in redis-py 8 sets no retry policy, unlike `Redis(host=..., port=...)`: a connection
that breaks after a write was sent surfaces as `ConnectionError`. Retrying is safe with `StreamState`
(every write carries an op id, so a re-sent write returns its first outcome), so the clients we make
retry a few times with jittered backoff.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

__all__ = ["RETRIES", "connect"]

RETRIES = 3


def connect(url: str, *, cluster: bool = False, **options: Any) -> Any:
    """A `redis.asyncio.Redis` (or `RedisCluster`) for `url` that re-sends a command whose connection
    broke, up to `RETRIES` times. Raises `ValueError` for a malformed URL."""
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
        **options,
    )
