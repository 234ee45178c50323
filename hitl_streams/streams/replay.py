"""Replaying history: rebuild the projection, or verify it, from the event stream.

A replay reads `{prefix}:events` in batches and projects every event, through the same reducer and
steps as live writes, into a scratch prefix (same hash slot in cluster mode). Memory stays bounded by
the batch: the state a reduction needs is read back from the scratch keys the replay has written.

- `verify` compares the scratch projection with the live one and reports drift; it never touches the
  live projection.
- `rebuild` swaps the scratch projection in: live keys the replay did not produce are deleted, every
  replayed key is RENAMEd over its live twin (atomic per key; readers never see a missing index).
  Writers may keep writing: the scratch catches up with their events, and they pause (`write_pause`)
  only for the last catch-up and the swap.

Cost scales with the prefix, not the keyspace: a replay records the name of every key it touches in
`{scratch}:meta:written`, and comparing, swapping and cleaning up walk that SET. Every key the history
names is checked that way. A key under the prefix that no event names (written by hand, or by a projection
step since withdrawn) is found only by a sweep, a SCAN of the whole keyspace: `sweep=True` always sweeps,
`sweep=False` never, and the default sweeps when the database is not much larger than the prefix
(`SWEEP_RATIO`), so a prefix sharing Redis with millions of other keys is not held up by them. Migrations,
adopt and import always sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..history import events as ev
from ..history.codec import Subject
from ..history.keys import Keys
from ..history.projection import Ops, Projector, Step, load_steps
from ..history.reducer import apply, key_of, subject_ref
from .autobatch import raw_link
from .bulk import NetOps, checked, run_commands, send_commands
from .locks import prefix_lock, write_pause
from .replay_lua import LUA_STEPS, REPLAY_LUA
from .replies import event_field, text
from .scripts import APPEND_FIELDS_LUA

__all__ = [
    "DriftReport",
    "LongValue",
    "ReplayProgress",
    "ReplayStats",
    "is_projection_key",
    "projection_keys",
    "read_value",
    "rebuild",
    "replay_into",
    "same_slices",
    "verify",
    "written_keys",
]

BATCH_SIZE = 10_000
"""Events per XRANGE. Larger batches cost less per event on both sides (fewer commands, longer ZADDs,
fewer keys written twice across a batch boundary): 2,000 -> 10,000 took Redis CPU per rebuilt event from
about 29 to 23 us and Python from 102 to 86 us on a loaded machine (three alternating runs)."""
SWEEP_RATIO = 4
"""The default sweeps when the database holds at most this many times the replayed keys (plus
`SWEEP_SLACK`): then a SCAN costs about what the replay does."""
SWEEP_SLACK = 250_000
_NOT_PROJECTION = ("events", "ops:", "op:", "meta:", "scratch:", "lease:")
"""Key suffixes that are not projection keys. `op:` keys held one write's outcome in earlier builds (they
expire on their own)."""


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    phase: str
    """"replay", "compare" or "swap"."""
    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ReplayStats:
    events: int
    keys_written: int
    seconds: float
    last_position: str | None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class DriftReport:
    """Keys (live names) that a replay of history produces differently from the live projection."""

    events: int = 0
    keys_checked: int = 0
    missing: list[str] = field(default_factory=list)
    """In the replay, not live."""
    extra: list[str] = field(default_factory=list)
    """Live, not in the replay."""
    differing: list[str] = field(default_factory=list)
    """In both, with another type or value."""
    swept: bool = True
    """False when keys no event names were not looked for (no sweep: see the module docs)."""

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.differing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "events": self.events,
            "keysChecked": self.keys_checked,
            "missing": self.missing,
            "extra": self.extra,
            "differing": self.differing,
            "swept": self.swept,
        }


def is_projection_key(keys: Keys, key: str) -> bool:
    """True for keys under the prefix that the projection owns (not history, op ids, meta, scratch)."""
    suffix = key[len(keys.prefix) + 1 :]
    return key.startswith(keys.prefix + ":") and not suffix.startswith(_NOT_PROJECTION)


async def projection_keys(redis: Any, keys: Keys, count: int = 1000) -> AsyncIterator[str]:
    """Every projection key under the prefix (SCAN, so it does not block the server)."""
    async for raw in redis.scan_iter(match=keys.prefix + ":*", count=count):
        key = text(raw)
        if is_projection_key(keys, key):
            yield key


_SLICE = 5000
"""ZSETs and LISTs longer than this are compared slice by slice, so memory does not grow with them."""


class LongValue:
    """Stands for a ZSET or LIST longer than `read_value`'s `head`: compare it with `same_slices`."""

    __eq__ = object.__eq__  # never equal to a value: a long key is compared by slices
    __hash__ = object.__hash__


async def read_value(redis: Any, names: list[str], *, head: int | None = None) -> list[tuple[str, Any]]:
    """(type, comparable value) of each key, in two pipelined round trips. With `head`, a ZSET or LIST
    longer than `head` items comes back as a `LongValue` instead of its items."""
    stop = -1 if head is None else head
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
    types = [text(t) for t in await pipe.execute()]
    pipe = redis.pipeline(transaction=False)
    for name, kind in zip(names, types, strict=True):
        if kind == "string":
            pipe.get(name)
        elif kind == "zset":
            pipe.zrange(name, 0, stop, withscores=True)
        elif kind == "list":
            pipe.lrange(name, 0, stop)
        elif kind == "set":
            pipe.smembers(name)
        elif kind == "hash":
            pipe.hgetall(name)
        else:
            pipe.exists(name)
    values = await pipe.execute()
    out: list[tuple[str, Any]] = []
    for kind, value in zip(types, values, strict=True):
        if head is not None and kind in ("zset", "list") and len(value) > head:
            out.append((kind, LongValue()))
            continue
        if kind == "string" and isinstance(value, str):
            value = value.encode()
        elif kind == "zset":
            value = [(text(m), float(s)) for m, s in value]
        elif kind == "list":
            value = [text(v) for v in value]
        elif kind == "set":
            value = sorted(text(v) for v in value)
        elif kind == "hash":
            value = sorted((text(k), text(v)) for k, v in value.items())
        out.append((kind, value))
    return out


async def same_slices(redis: Any, kind: str, first: str, second: str, size: int = _SLICE) -> bool:
    """Compare two ZSETs (members and scores, in order) or two LISTs, `size` items at a time."""
    start = 0
    while True:
        if kind == "zset":
            a = await redis.zrange(first, start, start + size - 1, withscores=True)
            b = await redis.zrange(second, start, start + size - 1, withscores=True)
        else:
            a = await redis.lrange(first, start, start + size - 1)
            b = await redis.lrange(second, start, start + size - 1)
        if [text(x) if not isinstance(x, tuple) else (text(x[0]), float(x[1])) for x in a] != [
            text(x) if not isinstance(x, tuple) else (text(x[0]), float(x[1])) for x in b
        ]:
            return False
        if len(a) < size:
            return True
        start += size


async def replay_into(
    redis: Any,
    source: Keys,
    target: Keys,
    projector: Projector,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[ReplayProgress], None] | None = None,
    after: str | None = None,
) -> ReplayStats:
    """Project every event of `source`'s stream into keys under `target` (assumed empty), or, with
    `after`, only the events after that position (catching up a target that holds the replay up to it).

    With the default steps on a plain client, a Lua script projects the plain request events in Redis
    (`replay_lua`), handing over to `_replay_python` for one batch at each event it does not take."""
    if not (USE_LUA and _lua_usable(redis, projector)):
        return await _replay_python(
            redis, source, target, projector, batch_size=batch_size, progress=progress, after=after
        )
    started = time.perf_counter()
    total = int(await redis.xlen(source.events))
    cursor = target.meta_cursor
    position, done, written, last = after or "0-0", 0, 0, after
    handover = LUA_HANDOVER
    try:
        while True:
            checked(await run_commands(redis, [("SET", cursor, position)]))
            events, count, lua_last, stopped = await _replay_lua(redis, source, target, cursor)
            done, written = done + events, written + count
            if lua_last is not None:
                position = last = lua_last
            if progress is not None and events:
                progress(ReplayProgress("replay", done, max(total, done), time.perf_counter() - started))
            if not stopped:
                break
            # A history the script mostly leaves to Python gets Python's batches back, a few round trips
            # after the other.
            handover = min(2 * handover, batch_size) if events < handover else LUA_HANDOVER
            more = await _replay_python(
                redis, source, target, projector, batch_size=handover, after=position, max_batches=1
            )
            if more.last_position is None:
                break
            done, written = done + more.events, written + more.keys_written
            position = last = more.last_position
            if progress is not None:
                progress(ReplayProgress("replay", done, max(total, done), time.perf_counter() - started))
            if more.events < handover:  # the end of the stream, as it was: not a chase after writers
                break
    finally:
        await redis.delete(cursor)
    return ReplayStats(done, written, time.perf_counter() - started, last)


USE_LUA = True
LUA_CHUNK = 500
"""Events per call of the replay script, which blocks Redis meanwhile: 10-25 ms on this 2-core VM."""
LUA_HANDOVER = 32
"""Events Python projects at an event the script does not take, before the script takes over again; doubled
(up to `batch_size`) each time the script then takes fewer."""


def _lua_usable(redis: Any, projector: Projector) -> bool:
    """The default steps, on a single Redis server behind the batching link (not a cluster: the script
    names keys it builds)."""
    return (
        raw_link(redis) is not None
        and tuple(s.id for s in projector.steps) == LUA_STEPS
        and all(s.project is d.project for s, d in zip(projector.steps, _default_steps(), strict=True))
    )


@functools.cache
def _default_steps() -> tuple[Step, ...]:
    return tuple(load_steps())


async def _replay_lua(redis: Any, source: Keys, target: Keys, cursor: str) -> tuple[int, int, str | None, bool]:
    """Run the replay script until it reaches the stream's end or stops at an event it does not take,
    two calls in flight (one runs while the next one's reply travels). (events, writes, last position,
    stopped)."""
    command = ("EVAL", REPLAY_LUA, 0, source.events, target.prefix, cursor, LUA_CHUNK)
    inflight = [await send_commands(redis, [command]), await send_commands(redis, [command])]
    events = writes = 0
    last: str | None = None
    stopped = False
    while inflight:
        ((handled, position, stop, read, count),) = checked(await inflight.pop(0))
        if handled:
            events, writes, last = events + int(handled), writes + int(count), text(position)
        if int(stop):
            stopped = True
        elif int(read) == LUA_CHUNK and not stopped:
            inflight.append(await send_commands(redis, [command]))
    return events, writes, last, stopped


async def _replay_python(
    redis: Any,
    source: Keys,
    target: Keys,
    projector: Projector,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[ReplayProgress], None] | None = None,
    after: str | None = None,
    max_batches: int | None = None,
) -> ReplayStats:
    """`replay_into` in Python: every event through the reducer and the steps.

    Per batch: one XRANGE, one MGET of the subjects the batch's mutations need, then the batch's writes
    folded into their net effect per key (`bulk.NetOps`) and sent in one round trip. Nothing else writes
    under `target` meanwhile, so the net effect equals running every write in order.

    Redis works while Python computes: the next batch's XRANGE goes out before this batch is projected,
    and its MGET before this batch's writes. That MGET sees the target as the earlier batches left it;
    the subjects this batch wrote come from this batch's own records instead (`carry`)."""
    started = time.perf_counter()
    total = int(await redis.xlen(source.events))
    start, done, written, last = "-" if after is None else "(" + after, 0, 0, None
    carry: dict[str, Subject | None] = {}
    rows = checked(await run_commands(redis, [("XRANGE", source.events, start, "+", "COUNT", batch_size)]))[0]
    with _gc_paused():
        batch = _decoded(rows)
    subjects = await _send_subject_reads(redis, batch, target, carry)
    writing: asyncio.Future[list[Any]] | None = None
    reading: asyncio.Future[list[Any]] | None = None
    batches = 0
    try:
        while batch:
            batches += 1
            more = len(rows) == batch_size and (max_batches is None or batches < max_batches)
            reading = await send_commands(
                redis, [("XRANGE", source.events, "(" + batch[-1][0], "+", "COUNT", batch_size)] if more else []
            )
            await asyncio.sleep(0)  # let the batching link write it now, not after the projection below
            cache = await _subjects(subjects, carry)
            with _gc_paused():
                commands, count, touched, names, cleared = _project_batch(batch, cache, target, projector)
            if names:
                commands.append(("SADD", target.meta_written, *names))
            if cleared:
                commands.append(("SADD", target.meta_cleared, *cleared))
            written += count
            rows = checked(await reading)[0] if more else []
            with _gc_paused():
                next_batch = _decoded(rows)
            subjects = await _send_subject_reads(redis, next_batch, target, touched)
            sent = await send_commands(redis, commands)
            if writing is not None:
                checked(await writing)
            writing = sent
            done += len(batch)
            last = batch[-1][0]
            if progress is not None:
                progress(ReplayProgress("replay", done, max(total, done), time.perf_counter() - started))
            batch, carry = next_batch, touched
        if writing is not None:
            checked(await writing)
    except BaseException:
        for future in (reading, subjects[1], writing):  # left in flight: their errors are not news
            if future is not None:
                future.add_done_callback(_ignored)
        raise
    return ReplayStats(done, written, time.perf_counter() - started, last)


def _ignored(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during one batch's synchronous work. Its thousands of short-lived
    objects are freed by reference counting anyway, but they set off dozens of collections that cost a
    quarter of a replay's CPU. Nothing else runs meanwhile (no await inside), and the collector looks at
    what survives once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


Batch = list[tuple[str, ev.Event]]
SubjectReads = tuple[list[tuple[str, Callable[[bytes | str], Subject]]], "asyncio.Future[list[Any]] | None"]


def _decoded(rows: list[Any]) -> Batch:
    return [(text(pos), ev.decode_event(event_field(fields))) for pos, fields in rows]


async def _send_subject_reads(redis: Any, batch: Batch, target: Keys, known: dict[str, Subject | None]) -> SubjectReads:
    """Send the MGET of the subjects `batch` needs that `known` does not hold; (names and decoders, future)."""
    refs = {ref[0]: ref[1] for _, event in batch if (ref := subject_ref(event, target)) is not None}
    wanted = [(name, decode) for name, decode in refs.items() if name not in known]
    if not wanted:
        return wanted, None
    return wanted, await send_commands(redis, [("MGET", *(name for name, _ in wanted))])


async def _subjects(reads: SubjectReads, carry: dict[str, Subject | None]) -> dict[str, Subject | None]:
    """The records a batch starts from: what the MGET found, and what the previous batch left (`carry`)."""
    wanted, future = reads
    cache = dict(carry)
    if future is not None:
        (values,) = checked(await future)
        for (name, decode), raw in zip(wanted, values, strict=True):
            cache[name] = None if raw is None else decode(raw)
    return cache


def _project_batch(
    batch: Batch, cache: dict[str, Subject | None], target: Keys, projector: Projector
) -> tuple[list[tuple[Any, ...]], int, dict[str, Subject | None], list[str], list[str]]:
    """The commands that write `batch`'s projection (net effect per key), how many writes it has, the
    records it leaves (`cache`, the records it starts from, is brought up to date as it goes), the
    names of the keys it touches, and those of them it may leave absent (a ZREM, a deadline)."""
    projected: list[tuple[Ops, str]] = []
    touched: dict[str, Subject | None] = {}
    net = NetOps()
    count = 0
    project, fold, get = projector.project, net.add, cache.get
    for position, event in batch:
        ref = subject_ref(event, target)
        change = apply(event, get(ref[0]) if ref else None, target)
        if change.after is not None:
            key = key_of(change.after, target)
            cache[key] = touched[key] = change.after
        ops = project(change)
        count += len(ops)
        fold(ops, position)
        projected.append((ops, position))
    try:
        commands = net.commands()
        return commands, count, touched, net.keys(), net.cleared()
    except TypeError:  # a key written as two types (a damaged history): apply every write in order
        commands = [cmd for ops, position in projected for cmd in _op_commands(ops, position)]
        names = list(dict.fromkeys(key for ops, _ in projected for _, key, _ in ops))
        cleared = list(dict.fromkeys(key for ops, _ in projected for code, key, _ in ops if code in "RE"))
        return commands, count, touched, names, cleared


def _op_commands(ops: Ops, position: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for code, key, args in ops:
        if code == "S":
            out.append(("SET", key, args[0]))
        elif code == "Z":
            out.append(("ZADD", key, args[0], args[1]))
        elif code == "R":
            out.append(("ZREM", key, args[0]))
        elif code == "A":
            out.append(("SADD", key, args[0]))
        elif code == "H":
            out.append(("EVAL", APPEND_FIELDS_LUA, 1, key, 1, args[0], position))
        elif code == "E":
            out.append(("PEXPIREAT", key, args[0]))
        else:
            out.append(("RPUSH", key, position))
    return out


async def written_keys(
    redis: Any, scratch: Keys, count: int = 1000, *, cleared: bool = False
) -> AsyncIterator[list[str]]:
    """The names a replay into `scratch` touched (`{scratch}:meta:written`), or with `cleared` those of
    them it may have left absent (`{scratch}:meta:cleared`), in chunks. SSCAN may repeat a name; every use
    below is idempotent."""
    cursor: Any = 0
    listed = scratch.meta_cleared if cleared else scratch.meta_written
    while True:
        cursor, names = await redis.sscan(listed, cursor, count=count)
        if names:
            yield [text(n) for n in names]
        if int(cursor) == 0:
            return


async def _delete_prefix(redis: Any, keys: Keys, *, swapped: bool = False) -> None:
    """Delete a scratch prefix: the keys its replay wrote (none are left once `swap_in` has finished:
    `swapped`), its own stream (adopt and import stage one), then the lists of the keys."""
    if not swapped:
        async for names in written_keys(redis, keys):
            await redis.delete(*names)
    # UNLINK: Redis frees a list of every replayed key's name (a 40,000-member SET took ~50 ms) off its
    # main thread.
    await redis.unlink(keys.events, keys.meta_written, keys.meta_cleared)


async def _sweep_needed(redis: Any, scratch: Keys, sweep: bool | None) -> bool:
    """Whether to SCAN the keyspace for keys no event names: as asked, or when the database is not much
    larger than the replayed prefix."""
    if sweep is not None:
        return sweep
    replayed = int(await redis.scard(scratch.meta_written))
    return int(await redis.dbsize()) <= SWEEP_RATIO * replayed + SWEEP_SLACK


def _twin(key: str, source: Keys, target: Keys) -> str:
    return target.prefix + key[len(source.prefix) :]


async def _compare(redis: Any, live: Keys, replayed: Keys, report: DriftReport, *, sweep: bool | None = True) -> None:
    """Compare the keys the replay touched with their live twins; with a sweep, also look for live keys
    under the prefix that no event names."""
    extra: set[str] = set()

    async def check(names: list[str]) -> None:
        names = list(dict.fromkeys(names))
        twins = [_twin(n, replayed, live) for n in names]
        ours = await read_value(redis, names, head=_SLICE)
        theirs = await read_value(redis, twins, head=_SLICE)
        for name, twin, mine, current in zip(names, twins, ours, theirs, strict=True):
            if mine[0] == "none":  # the replay cleared it (an index emptied): live must not have it
                if current[0] != "none":
                    report.keys_checked += 1
                    extra.add(twin)
                continue
            report.keys_checked += 1
            if current[0] == "none":
                report.missing.append(twin)
            elif isinstance(mine[1], LongValue) or isinstance(current[1], LongValue):
                if mine[0] != current[0] or not await same_slices(redis, mine[0], name, twin):
                    report.differing.append(twin)
            elif mine != current:
                report.differing.append(twin)

    async for chunk in written_keys(redis, replayed, count=500):
        await check(chunk)

    report.swept = await _sweep_needed(redis, replayed, sweep)
    if report.swept:

        async def extras(batch: list[str]) -> None:  # names the replay touched were checked above
            extra.update(await _unwritten(redis, live, replayed, batch))

        names: list[str] = []
        async for name in projection_keys(redis, live):
            names.append(name)
            if len(names) >= 500:
                await extras(names)
                names = []
        if names:
            await extras(names)
    report.extra = sorted(extra)
    report.missing = sorted(set(report.missing))  # SSCAN may hand a name out twice
    report.differing = sorted(set(report.differing))


async def verify(
    redis: Any,
    keys: Keys,
    projector: Projector,
    *,
    progress: Callable[[ReplayProgress], None] | None = None,
    sweep: bool | None = None,
) -> DriftReport:
    """Replay history into a scratch prefix and compare; the live projection is not written."""
    scratch = keys.scratch(uuid.uuid4().hex[:12])
    try:
        stats = await replay_into(redis, keys, scratch, projector, progress=progress)
        report = DriftReport(events=stats.events)
        await _compare(redis, keys, scratch, report, sweep=sweep)
        return report
    finally:
        await _delete_prefix(redis, scratch)


async def swap_in(redis: Any, keys: Keys, scratch: Keys, *, sweep: bool | None = True) -> int:
    """Make the scratch projection the live one: drop live keys it lacks, RENAME each of its keys over
    its live twin. Returns the number of keys moved.

    Live keys the replay did not touch are deleted when sweeping (found by SCAN, told apart by
    SMISMEMBER on the replay's list of keys); so are the live twins of the keys the replay touched but
    left absent, which can only be keys it removed from or gave a deadline (`meta_cleared`, a short list
    checked with EXISTS). Both before any RENAME, while the scratch still tells what exists. Every other
    key then costs one RENAME."""
    if await _sweep_needed(redis, scratch, sweep):
        stale: list[str] = []
        async for name in projection_keys(redis, keys):
            stale.append(name)
            if len(stale) >= 2000:
                await _delete(redis, await _unwritten(redis, keys, scratch, stale))
                stale = []
        if stale:
            await _delete(redis, await _unwritten(redis, keys, scratch, stale))
    async for names in written_keys(redis, scratch, count=2000, cleared=True):
        await _drop_missing(redis, keys, scratch, [_twin(n, scratch, keys) for n in names])
    moved = 0
    # A name SSCAN repeats was already moved, and any other absent key was dropped above: "no such key"
    # is fine.
    async for names in written_keys(redis, scratch, count=2000):
        moved += await _rename_over(redis, scratch, keys, names)
    return moved


async def _unwritten(redis: Any, live: Keys, scratch: Keys, names: list[str]) -> list[str]:
    """The live `names` whose twins the replay into `scratch` never touched."""
    twins = [_twin(name, live, scratch) for name in names]
    (listed,) = checked(await run_commands(redis, [("SMISMEMBER", scratch.meta_written, *twins)]))
    return [name for name, there in zip(names, listed, strict=True) if not there]


async def _delete(redis: Any, names: list[str]) -> None:
    if names:
        await redis.delete(*names)


async def _rename_over(redis: Any, scratch: Keys, keys: Keys, names: list[str]) -> int:
    replies = await run_commands(redis, [("RENAME", name, _twin(name, scratch, keys)) for name in names])
    moved = 0
    for reply in replies:
        if isinstance(reply, Exception):
            if "no such key" not in str(reply).lower():
                raise reply
        else:
            moved += 1
    return moved


async def _drop_missing(redis: Any, keys: Keys, scratch: Keys, names: list[str]) -> None:
    found = checked(await run_commands(redis, [("EXISTS", _twin(name, keys, scratch)) for name in names]))
    await _delete(redis, [n for n, exists in zip(names, found, strict=True) if not exists])


_CATCH_UP_ROUNDS = 8
_SMALL_TAIL = 500


def _joined(first: ReplayStats, more: ReplayStats) -> ReplayStats:
    return ReplayStats(
        first.events + more.events,
        first.keys_written + more.keys_written,
        first.seconds + more.seconds,
        more.last_position or first.last_position,
    )


async def rebuild_locked(
    redis: Any,
    keys: Keys,
    projector: Projector,
    *,
    progress: Callable[[ReplayProgress], None] | None = None,
    sweep: bool | None = None,
) -> ReplayStats:
    """`rebuild` for a caller that already holds the prefix lock.

    Writers may keep writing. The replay runs while they do; the scratch projection then catches up with
    the events they appended meanwhile; then writes pause (`write_pause`) for the last catch-up and the
    swap, so no write lands between the replay's end and the swap, where the swap would revert it."""
    scratch = keys.scratch(uuid.uuid4().hex[:12])
    swapped = False
    try:
        stats = await replay_into(redis, keys, scratch, projector, progress=progress)
        for _ in range(_CATCH_UP_ROUNDS):
            more = await replay_into(redis, keys, scratch, projector, after=stats.last_position or "0-0")
            stats = _joined(stats, more)
            if more.events < _SMALL_TAIL:
                break
        async with write_pause(redis, keys):
            more = await replay_into(redis, keys, scratch, projector, after=stats.last_position or "0-0")
            stats = _joined(stats, more)
            await swap_in(redis, keys, scratch, sweep=sweep)
            swapped = True
        if stats.last_position is not None:
            await redis.hset(keys.meta_projection, mapping={"position": stats.last_position, "events": stats.events})
        await redis.hincrby(keys.meta_projection, "rebuilds", 1)
        return stats
    finally:
        await _delete_prefix(redis, scratch, swapped=swapped)


async def rebuild(
    redis: Any,
    keys: Keys,
    projector: Projector,
    *,
    progress: Callable[[ReplayProgress], None] | None = None,
    sweep: bool | None = None,
) -> ReplayStats:
    """Rewrite the whole projection from history, holding the prefix lock."""
    async with prefix_lock(redis, keys):
        return await rebuild_locked(redis, keys, projector, progress=progress, sweep=sweep)
