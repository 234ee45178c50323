"""Byte-level snapshots of a key prefix, for tests that compare a projection before and after something."""

from __future__ import annotations

from typing import Any

from ..history.keys import Keys
from ..streams.replay import projection_keys, read_value

__all__ = ["snapshot"]


async def snapshot(redis: Any, keys: Keys, *, projection_only: bool = True) -> dict[str, tuple[str, Any]]:
    """Every key under the prefix mapped to (type, value): strings as bytes, ZSETs as (member, score)
    lists in order, LISTs in order, SETs sorted. With `projection_only`, history, op ids, meta and
    scratch keys are left out."""
    if projection_only:
        names = [name async for name in projection_keys(redis, keys)]
    else:
        names = [k.decode() if isinstance(k, bytes) else k async for k in redis.scan_iter(match=keys.prefix + ":*")]
    names.sort()
    values = await read_value(redis, names) if names else []
    return dict(zip(names, values, strict=True))
