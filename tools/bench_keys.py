"""`bench.py --only memory`: where a request's bytes go, key by key (`MEMORY USAGE`), and event by event.

Key names are grouped into their layout pattern (`{P}:req:{id}`, `{P}:audits:{bucket}`, ...) and each group's
`MEMORY USAGE` (every element counted: `SAMPLES 0`) is divided by the number of requests. Redis estimates a
stream's radix tree at a fixed 240 bytes per node, which overstates it (the sum of the groups is then a bit
above the `used_memory` growth); so the events are also shown by type, as the average bytes of their JSON.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import msgspec

_BUCKET = re.compile(r"^(audits:[^:]+|ops:[0-9]+(:[0-9]+)?)$")


def pattern(key: str, prefix: str, request_ids: set[str], tokens: set[str]) -> str:
    """`key` as its layout pattern: the prefix as `{P}`, a request id as `{id}`, a token as `{token}`."""
    rest = key[len(prefix) + 1 :]
    if _BUCKET.match(rest):
        return "{P}:" + rest.split(":")[0] + (":{bucket}" if rest.startswith("audits") else ":{second}")
    head, _, last = rest.rpartition(":")
    if last in request_ids:
        return "{P}:" + head + ":{id}"
    if last in tokens:
        return "{P}:" + head + ":{token}"
    return "{P}:" + rest


async def breakdown(
    client: Any, prefix: str, n: int, request_ids: set[str], tokens: set[str], *, only: str = ":", chunk: int = 1000
) -> list[dict[str, Any]]:
    """One row per key pattern under `prefix` (those starting `prefix + only`), largest first:
    `bytes_per_request`, `keys`, `encoding`."""
    found = client.scan_iter(match=prefix + only + "*", count=2000)
    names = [k if isinstance(k, str) else k.decode() async for k in found]
    sizes: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    encodings: dict[str, str] = {}
    for start in range(0, len(names), chunk):
        part = names[start : start + chunk]
        pipe = client.pipeline(transaction=False)
        for name in part:
            pipe.memory_usage(name, samples=0)
            pipe.object("encoding", name)
        replies = await pipe.execute()
        for i, name in enumerate(part):
            group = pattern(name, prefix, request_ids, tokens)
            sizes[group] += int(replies[2 * i] or 0)
            counts[group] += 1
            encoding = replies[2 * i + 1]
            encodings[group] = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
    rows = [
        {"name": group, "bytes_per_request": round(size / n, 1), "keys": counts[group], "encoding": encodings[group]}
        for group, size in sizes.items()
    ]
    return sorted(rows, key=lambda row: -float(row["bytes_per_request"]))


async def event_sizes(client: Any, stream: str, count: int = 2000) -> list[dict[str, Any]]:
    """The average JSON bytes of each event type among the stream's first `count` entries."""
    total: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    for _position, fields in await client.xrange(stream, count=count):
        raw = fields.get(b"event", fields.get("event"))
        kind = str(msgspec.json.decode(raw).get("type"))
        total[kind] += len(raw)
        seen[kind] += 1
    return [{"name": kind, "json_bytes": round(total[kind] / seen[kind], 1), "events": seen[kind]} for kind in total]
