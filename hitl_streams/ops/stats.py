"""Operator statistics for one prefix: counts by status and namespace, history, steps, due schedules, memory.

Counts are `ZCARD`s of the projection's indexes (what `count()` answers). Namespaces are found by SCAN of
`{P}:idx:ns:*`. Memory is the sum of `MEMORY USAGE` over every key under the prefix (found by SCAN):
Redis estimates each key (nested values are sampled), and the server's own overhead is not included, so
the figure is approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._time import now_ms
from ..history import events as ev
from ..history.keys import Keys
from ..history.projection import Projector
from ..streams.replies import text
from ..streams.schema import schema_status

__all__ = ["PrefixStats", "collect_stats"]

_CHUNK = 500


@dataclass(slots=True)
class PrefixStats:
    prefix: str
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_namespace: dict[str, dict[str, int]] = field(default_factory=dict)
    """namespace → {"total", "pending", "resolved"}."""
    stream_length: int = 0
    first_event: tuple[str, str] | None = None
    """(position, time) of the oldest event."""
    last_event: tuple[str, str] | None = None
    steps_applied: list[str] = field(default_factory=list)
    steps_pending: list[str] = field(default_factory=list)
    due: int = 0
    """Requests and batches with a server-side schedule item still to fire (`{P}:idx:due`)."""
    oldest_overdue: tuple[str, int] | None = None
    """(subject id, milliseconds overdue) of the item that should have fired longest ago, if any."""
    keys: int = 0
    memory_bytes: int = 0
    """Approximate: the sum of `MEMORY USAGE` of every key under the prefix."""

    def to_dict(self) -> dict[str, Any]:
        def event(value: tuple[str, str] | None) -> dict[str, str] | None:
            return None if value is None else {"position": value[0], "at": value[1]}

        return {
            "prefix": self.prefix,
            "requests": self.requests,
            "byStatus": self.by_status,
            "byNamespace": self.by_namespace,
            "streamLength": self.stream_length,
            "firstEvent": event(self.first_event),
            "lastEvent": event(self.last_event),
            "stepsApplied": self.steps_applied,
            "stepsPending": self.steps_pending,
            "due": self.due,
            "oldestOverdue": None
            if self.oldest_overdue is None
            else {"id": self.oldest_overdue[0], "overdueMs": self.oldest_overdue[1]},
            "keys": self.keys,
            "memoryBytes": self.memory_bytes,
            "memoryIsApproximate": True,
        }


def _describe(rows: Any) -> tuple[str, str] | None:
    if not rows:
        return None
    position, fields = rows[0]
    raw = fields.get("event", fields.get(b"event")) if isinstance(fields, dict) else None
    try:
        at = ev.decode_event(raw).at if raw is not None else "?"
    except Exception:  # an event this version cannot decode still has a position
        at = "?"
    return text(position), at


async def _memory(redis: Any, keys: Keys, stats: PrefixStats) -> None:
    async def measure(names: list[str]) -> None:
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.memory_usage(name)
        stats.memory_bytes += sum(int(v or 0) for v in await pipe.execute())
        stats.keys += len(names)

    names: list[str] = []
    async for raw in redis.scan_iter(match=keys.prefix + ":*", count=1000):
        names.append(text(raw))
        if len(names) >= _CHUNK:
            await measure(names)
            names = []
    if names:
        await measure(names)


async def collect_stats(redis: Any, keys: Keys, projector: Projector, *, memory: bool = True) -> PrefixStats:
    """Everything `hitl-streams stats` shows. Reads only; SCANs, so it does not block the server."""
    stats = PrefixStats(prefix=keys.prefix)
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(keys.idx_all)
    pipe.zcard(keys.idx_status("pending"))
    pipe.zcard(keys.idx_status("resolved"))
    pipe.xlen(keys.events)
    pipe.xrange(keys.events, count=1)
    pipe.xrevrange(keys.events, count=1)
    pipe.zcard(keys.idx_due)
    pipe.zrange(keys.idx_due, 0, 0, withscores=True)
    total, pending, resolved, length, first, last, due, earliest = await pipe.execute()
    stats.due = int(due)
    if earliest:
        member, score = earliest[0]
        overdue = now_ms() - int(float(score))
        if overdue > 0:
            stats.oldest_overdue = (text(member), overdue)
    stats.requests, stats.stream_length = int(total), int(length)
    stats.by_status = {"pending": int(pending), "resolved": int(resolved)}
    stats.first_event, stats.last_event = _describe(first), _describe(last)

    base = keys.idx_ns("")
    namespaces = sorted(
        {
            name[len(base) :]
            async for raw in redis.scan_iter(match=base + "*", count=1000)
            if ":status:" not in (name := text(raw))[len(base) :]
        }
    )
    for start in range(0, len(namespaces), _CHUNK):
        chunk = namespaces[start : start + _CHUNK]
        pipe = redis.pipeline(transaction=False)
        for ns in chunk:
            pipe.zcard(keys.idx_ns(ns))
            pipe.zcard(keys.idx_ns_status(ns, "pending"))
            pipe.zcard(keys.idx_ns_status(ns, "resolved"))
        counts = [int(c) for c in await pipe.execute()]
        for i, ns in enumerate(chunk):
            stats.by_namespace[ns] = dict(zip(("total", "pending", "resolved"), counts[3 * i : 3 * i + 3], strict=True))

    status = await schema_status(redis, keys, projector)
    stats.steps_applied = [s.id for s in status.applied]
    stats.steps_pending = [s.id for s in status.pending]
    if memory:
        await _memory(redis, keys, stats)
    return stats
