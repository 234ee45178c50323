"""A per-prefix lock with expiry for migrations and rebuilds.

`SET {P}:meta:lock <token> NX PX ttl`; renewed while held; released only by its holder (compare and
delete in Lua). A holder that dies loses the lock after `ttl`, so nothing stays stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from .._cancel import reraise_lost_cancel
from ..errors import SchemaError
from ..history.keys import Keys

__all__ = ["RELEASE_LUA", "RENEW_LUA", "hold", "prefix_lock", "write_pause"]

RENEW_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@contextlib.asynccontextmanager
async def prefix_lock(
    redis: Any, keys: Keys, *, ttl_ms: int = 30_000, wait_seconds: float = 600.0
) -> AsyncIterator[None]:
    """Hold `{prefix}:meta:lock` for the duration of the block, waiting up to `wait_seconds` for it."""
    token = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.02
    while not await redis.set(keys.meta_lock, token, nx=True, px=ttl_ms):
        if loop.time() > deadline:
            raise SchemaError(
                f"{keys.meta_lock} is held by another process (a migration or rebuild); "
                f"gave up after {wait_seconds:.0f}s"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)

    async with hold(redis, keys.meta_lock, token, ttl_ms):
        yield


@contextlib.asynccontextmanager
async def hold(redis: Any, key: str, token: str, ttl_ms: int) -> AsyncIterator[None]:
    """Keep an already-set `key` (holding `token`) alive while the block runs, then delete it if it is
    still ours. Renewed every third of its expiry, so a dead holder frees it within `ttl_ms`."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl_ms / 3000)
            await redis.execute_command("EVAL", RENEW_LUA, 1, key, token, ttl_ms)
            reraise_lost_cancel()

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await redis.execute_command("EVAL", RELEASE_LUA, 1, key, token)


_PAUSE_TTL_MS = 10_000


@contextlib.asynccontextmanager
async def write_pause(redis: Any, keys: Keys) -> AsyncIterator[None]:
    """Hold `{prefix}:meta:pause`: every write (the commit script checks the key) waits until it is gone.
    It expires on its own if this process dies, so writers never stay blocked."""
    token = uuid.uuid4().hex
    await redis.set(keys.meta_pause, token, px=_PAUSE_TTL_MS)
    async with hold(redis, keys.meta_pause, token, _PAUSE_TTL_MS):
        yield
