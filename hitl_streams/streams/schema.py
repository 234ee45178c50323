"""Bringing a prefix's projection up to date with the shipped steps (`ensure_schema`).

The ledger `{P}:meta:migrations` (a SET, as in the TypeScript layout) lists applied step ids, plus the
TypeScript ids they stand for. Pending steps on a prefix with history are applied by replaying the whole
history through every step into a scratch prefix and swapping it in, under the prefix lock: the result is
exactly what a fresh replay gives. A fresh prefix just records the ids. A prefix holding TypeScript data
without history must be adopted first (`hitl-streams adopt`), never silently rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import SchemaError
from ..history.keys import Keys
from ..history.projection import Projector, Step
from .locks import prefix_lock
from .replay import projection_keys, rebuild_locked
from .replies import text

__all__ = ["SchemaStatus", "ensure_schema", "schema_status"]


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    applied: list[Step]
    pending: list[Step]
    history_events: int


async def _ledger(redis: Any, keys: Keys) -> set[str]:
    return {text(m) for m in await redis.smembers(keys.meta_migrations)}


async def schema_status(redis: Any, keys: Keys, projector: Projector) -> SchemaStatus:
    applied = await _ledger(redis, keys)
    done = [s for s in projector.steps if s.id in applied]
    pending = [s for s in projector.steps if s.id not in applied]
    return SchemaStatus(done, pending, int(await redis.xlen(keys.events)))


_OURS = re.compile(r"\d{4}_[a-z0-9_]+")
"""Our step ids are `NNNN_name`; the TypeScript ledger's are `NNN-name` (we record those too)."""


async def _holds_unadopted_data(redis: Any, keys: Keys, ledger: set[str]) -> bool:
    """Projection keys without history. O(1) in the usual cases: an `IoredisState` with requests has its
    all-requests index, and one that ran its migrations has its ledger; only a TypeScript ledger without
    requests (notifications or timelines only) costs a SCAN, once."""
    if await redis.exists(keys.idx_all, keys.idx_status("pending"), keys.idx_status("resolved")):
        return True
    if ledger and not any(_OURS.fullmatch(step) for step in ledger):  # only a TypeScript ledger
        async for _ in projection_keys(redis, keys):
            return True
    return False


async def ensure_schema(redis: Any, keys: Keys, projector: Projector) -> None:
    """Apply pending steps. Idempotent; replicas starting together wait on the lock, one does the work."""
    wanted = projector.ledger_ids
    if set(wanted) <= await _ledger(redis, keys):
        return
    async with prefix_lock(redis, keys):
        applied = await _ledger(redis, keys)
        if set(wanted) <= applied:
            return
        if int(await redis.xlen(keys.events)) > 0:
            # Sweep: a new step may withdraw keys an earlier one wrote, which no event names any more.
            await rebuild_locked(redis, keys, projector, sweep=True)
        elif await _holds_unadopted_data(redis, keys, applied):
            raise SchemaError(
                f'"{keys.prefix}" holds data written without history (a TypeScript IoredisState deployment?). '
                "Adopt it first: `hitl-streams adopt --table ...` (or `await state.adopt()`)."
            )
        await redis.sadd(keys.meta_migrations, *wanted)
