"""History as JSON lines: export a prefix's stream, import it into an empty prefix.

One line per event: `{"position":"<stream id>","event":<the event JSON exactly as stored>}`. Export reads
the stream in batches (constant memory) and copies each event's bytes verbatim, so an export is a faithful
archive even of events this version could not decode. Import keeps the positions (stream ids), so the
audit index of the imported prefix is byte-identical to the original: re-importing an export into an
empty prefix gives the same projection as the original's.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import SchemaError, ValidationError
from ..history import events as ev
from ..history.keys import Keys
from ..history.projection import Projector
from ..streams.locks import prefix_lock
from ..streams.replay import _delete_prefix, projection_keys, replay_into, swap_in
from ..streams.replies import text

__all__ = ["ImportStats", "export_history", "import_history", "parse_position"]

_POSITION = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


class _Line(msgspec.Struct):
    position: str
    event: msgspec.Raw


_line = msgspec.json.Decoder(_Line)


@dataclass(frozen=True, slots=True)
class ImportStats:
    events: int
    last_position: str | None
    seconds: float


def parse_position(value: str) -> tuple[int, int]:
    """A stream id `ms-seq` (or `ms`) as a comparable pair; `ValidationError` otherwise."""
    match = _POSITION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(f'Invalid stream position "{value}" (expected a stream id such as 1764090184512-0)')
    return int(match.group(1)), int(match.group(2) or 0)


def _raw_event(fields: Any) -> bytes:
    value = fields.get("event", fields.get(b"event")) if isinstance(fields, dict) else None
    if value is None:
        raise SchemaError("stream entry without an 'event' field")
    return value.encode() if isinstance(value, str) else bytes(value)


async def export_history(
    redis: Any, keys: Keys, *, since: str | None = None, until: str | None = None, batch_size: int = 1000
) -> AsyncIterator[bytes]:
    """Every event from `since` to `until` (stream ids, inclusive) as one JSON line each (with `\\n`)."""
    for bound in (since, until):
        if bound is not None:
            parse_position(bound)
    start = since.strip() if since else "-"
    end = until.strip() if until else "+"
    while True:
        rows = await redis.xrange(keys.events, min=start, max=end, count=batch_size)
        for position, fields in rows:
            yield b'{"position":"' + text(position).encode() + b'","event":' + _raw_event(fields) + b"}\n"
        if len(rows) < batch_size:
            return
        start = "(" + text(rows[-1][0])


async def _lines(source: Iterable[bytes | str] | AsyncIterable[bytes | str]) -> AsyncIterator[bytes | str]:
    if isinstance(source, AsyncIterable):
        async for line in source:
            yield line
    else:
        for line in source:
            yield line


async def import_history(
    redis: Any,
    keys: Keys,
    lines: Iterable[bytes | str] | AsyncIterable[bytes | str],
    projector: Projector,
    *,
    batch_size: int = 1000,
) -> ImportStats:
    """Load exported JSON lines into an empty prefix (no history, no projection keys) and project them.

    The events are staged under a scratch prefix, replayed, and swapped in with the stream moved into
    place last, so an interrupted import leaves the prefix empty and can be run again."""
    started = time.perf_counter()
    async with prefix_lock(redis, keys):
        if int(await redis.xlen(keys.events)):
            raise SchemaError(f'"{keys.prefix}" already has history; import only into an empty prefix')
        async for name in projection_keys(redis, keys):
            raise SchemaError(f'"{keys.prefix}" is not empty ({name} exists); import only into an empty prefix')
        staging = keys.scratch("import-" + uuid.uuid4().hex[:12])
        try:
            last: tuple[int, int] | None = None
            pipe, pending, number = redis.pipeline(transaction=False), 0, 0
            async for raw in _lines(lines):
                number += 1
                if not raw.strip():
                    continue
                try:
                    line = _line.decode(raw)
                    ev.decode_event(line.event)
                    here = parse_position(line.position)
                except (msgspec.DecodeError, msgspec.ValidationError, ValidationError) as exc:
                    raise ValidationError(f"line {number}: not an exported event ({exc})") from None
                if last is not None and here <= last:
                    raise ValidationError(f"line {number}: position {line.position} is not after the previous one")
                last = here
                pipe.xadd(staging.events, {"event": bytes(line.event)}, id=f"{here[0]}-{here[1]}")
                pending += 1
                if pending >= batch_size:
                    await pipe.execute()
                    pipe, pending = redis.pipeline(transaction=False), 0
            if pending:
                await pipe.execute()
            stats = await replay_into(redis, staging, staging, projector)
            await swap_in(redis, keys, staging)
            if stats.last_position is not None:
                await redis.rename(staging.events, keys.events)
                await redis.hset(
                    keys.meta_projection, mapping={"position": stats.last_position, "events": stats.events}
                )
            await redis.sadd(keys.meta_migrations, *projector.ledger_ids)
        finally:
            await _delete_prefix(redis, staging)
    return ImportStats(stats.events, stats.last_position, time.perf_counter() - started)
