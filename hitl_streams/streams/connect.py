"""Making redis-py clients for our own entry points (`serve`, the operator CLI).

`Redis.from_url()` in redis-py 8 sets no retry policy, unlike `Redis(host=..., port=...)`: a connection
that breaks after a write was sent surfaces as `ConnectionError`. Retrying is safe with `StreamState`
(every write carries an op id, so a re-sent write returns its first outcome), so the clients we make
retry a few times with jittered backoff.

With no URL, `connect()` uses `$REDIS_URL`, else the URL `hitl-streams serve` recorded in
`./.hitl-data/redis.url` (its embedded server), as the CLI does.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from ..data_dir import DEFAULT_DATA_DIR, URL_FILE, discover_redis_url

__all__ = ["RETRIES", "connect"]

RETRIES = 3


def connect(url: str | None = None, *, cluster: bool = False, **options: Any) -> Any:
    """A `redis.asyncio.Redis` (or `RedisCluster`) for `url` that re-sends a command whose connection
    broke, up to `RETRIES` times. Raises `ValueError` for a malformed URL.

    Without `url`: `$REDIS_URL`, else the URL `hitl-streams serve` recorded in `./.hitl-data`; `ValueError`
    when there is neither."""
    if url is None:
        found = discover_redis_url()
        if found is None:
            raise ValueError(
                "no Redis URL: pass one, set REDIS_URL, or run `hitl-streams serve` in this directory "
                f"(it records its embedded server's URL in {DEFAULT_DATA_DIR / URL_FILE})"
            )
        url = found[0]
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
        **options,
    )
