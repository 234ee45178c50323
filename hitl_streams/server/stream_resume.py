"""`StreamResumeQueue`: resume jobs driven by the Redis stream of `StreamState` (the outbox is the history).

Every decision is a `request.resolved` / `request.timed_out` entry in `Keys(prefix).events`. A consumer
group (`Keys.resume_group`) reads them:

- `XREADGROUP ... >` with `BLOCK` hands out new entries as soon as they are appended (no polling delay);
- entries of other event types are acknowledged at once;
- an entry stays in this consumer's pending list until the workflow is resumed and that is recorded
  (`XACK` in `done`); while it is held (checked, buffered, in flight, or its bookkeeping retried) it is
  re-claimed (`XCLAIM ... JUSTID`) every third of `claim_idle_ms`, so no other consumer takes it over;
- every `claim_every_ms`: this consumer's own pending entries that it does not hold are read again (a
  reply of `XREADGROUP` lost on the wire, a failed `XACK`, a restart under the same name), and
  `XAUTOCLAIM` takes over entries another consumer left idle longer than `claim_idle_ms` (it died);
- entries read but not yet checked stay queued here: a Redis error in the middle of a batch delays the
  rest of it by a retry, it does not strand them in the pending list;
- on a clean stop, unfinished entries are made claimable at once (`XCLAIM ... IDLE`), so the next
  process picks them up on its first claim; a consumer left with no pending entry deletes itself, and
  consumers idle far longer than `claim_idle_ms` with no pending entry are deleted by the others;
- before running an entry, the request's audit trail is read: an entry whose request was already
  resumed (a consumer died between resuming and `XACK`) is acknowledged and skipped, and earlier
  attempts are counted so attempt numbers continue across restarts.

The group is created at the start of the stream (`0`), so decisions recorded while no server ran are
resumed too. A group that disappears while running (`NOGROUP`: `XGROUP DESTROY`, a flushed database) is
created again at once, just before the oldest entry this consumer still holds (else at the last entry it
read): entries before it were handed out and finished, later ones are read again, and those the history
(or this process's memory) shows as resumed are skipped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
import uuid
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from .._cancel import reraise_lost_cancel
from ..history.events import (
    RequestResolved,
    RequestTimedOut,
    ResumeAttempted,
    ResumeFailed,
    ResumeSucceeded,
    decode_event,
)
from ..history.keys import Keys
from ..state import State
from ..streams.autobatch import autobatched
from ..streams.replies import text
from .audit import Auditable
from .resumption import ResumeJob

__all__ = ["StreamResumeQueue"]

log = logging.getLogger("hitl_streams.server")


def _entries(reply: Any) -> list[tuple[str, dict[str, Any]]]:
    """Stream entries of an XREADGROUP reply: RESP2 `[[stream, entries]]`, RESP3 `{stream: [entries]}`."""
    if not reply:
        return []
    if isinstance(reply, dict):
        batches = [value[0] if value and isinstance(value[0], list) else value for value in reply.values()]
    else:
        batches = [messages for _, messages in reply]
    return [
        (text(entry_id), {text(k): v for k, v in (fields or {}).items()})
        for messages in batches
        for entry_id, fields in messages
    ]


class _Typed(msgspec.Struct):
    type: str


_type_of = msgspec.json.Decoder(_Typed)
_DECISIONS = frozenset(event.__struct_config__.tag for event in (RequestResolved, RequestTimedOut))

# Delete the group's consumers that hold nothing and were idle at least ARGV[2] ms (all of them, or only
# the one named ARGV[3]), in one step: a consumer that reads meanwhile cannot lose entries to it.
_REAP_LUA = """
local removed = 0
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  local chosen = ARGV[3] == '' or fields['name'] == ARGV[3]
  if chosen and fields['pending'] == 0 and fields['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    removed = removed + 1
  end
end
return removed
"""


_HANDED_BACK_IDLE_MS = 86_400_000
"""The idle time given to entries handed back on a clean stop: beyond any consumer's `claim_idle_ms`."""


def _is_nogroup(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _later(a: str | None, b: str) -> str:
    """The later of two stream ids."""
    return b if a is None or _order(b) > _order(a) else a


def _before(entry_id: str) -> str:
    """The stream id just before `entry_id` (a group created there delivers `entry_id` next)."""
    ms, seq = _order(entry_id)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-18446744073709551615" if ms > 0 else "0"


class StreamResumeQueue:
    """A `ResumeQueue` reading decisions from the history stream with a consumer group.

    `claim_idle_ms`: how long an entry another consumer holds must be idle before it is taken over (its
    consumer died); live consumers renew theirs every third of it. `claim_every_ms`: how often abandoned
    and lost entries are looked for. `reap_idle_ms`: consumers idle that long and holding nothing are
    deleted from the group (default: the larger of 10 x `claim_idle_ms` and 5 minutes).
    """

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        state: State,
        *,
        consumer: str | None = None,
        claim_idle_ms: int = 10_000,
        claim_every_ms: int | None = None,
        reap_idle_ms: int | None = None,
        block_ms: int = 250,
        batch: int = 100,
        include_timeouts: bool = True,
    ) -> None:
        if claim_idle_ms < 1:
            raise ValueError("claim_idle_ms must be positive")
        self._redis = redis
        self._acks = autobatched(redis)  # XACK, one per job: on the batching link, not a pool round trip
        self._keys = keys
        self._history: Auditable | None = state if isinstance(state, Auditable) else None
        # Unique per queue: two servers in one process (or a restart reusing a pid) are two consumers.
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_ms = claim_every_ms if claim_every_ms is not None else min(2_500, max(claim_idle_ms // 4, 1))
        self.reap_idle_ms = reap_idle_ms if reap_idle_ms is not None else max(10 * claim_idle_ms, 300_000)
        self._block_ms = block_ms
        self._batch = batch
        self._include_timeouts = include_timeouts
        self._buffer: collections.deque[ResumeJob] = collections.deque()
        self._unchecked: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._inflight: set[str] = set()
        """Entries this consumer holds: checked and buffered, running, or being finished."""
        self._last_read: str | None = None
        """The last entry this process read with `>`: where a lost group is created again."""
        self._next_claim = 0.0
        self._claim_after = 0.0
        self._recovering = False
        self._next_reap = 0.0
        self._beating: asyncio.Task[None] | None = None

    @classmethod
    def for_state(cls, state: State, **options: Any) -> StreamResumeQueue:
        """For a `StreamState`: it must expose its client as `redis` and its key names as `keys`."""
        return cls(state.redis, state.keys, state, **options)  # type: ignore[attr-defined]

    @property
    def _stream(self) -> str:
        return self._keys.events

    @property
    def _group(self) -> str:
        return self._keys.resume_group

    async def start(self) -> None:
        await self._create_group("0")
        self._next_claim = 0.0
        if self._beating is None or self._beating.done():
            self._beating = asyncio.create_task(self._heartbeat(), name="hitl-resume-heartbeat")

    async def _create_group(self, at: str) -> None:
        try:
            await self._redis.xgroup_create(self._stream, self._group, id=at, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:
            if at != "0":
                log.warning("hitl: the resume group %s was missing; created it again at %s", self._group, at)

    async def stop(self) -> None:
        """Hand unfinished entries back: make them claimable by the next consumer right away."""
        beating, self._beating = self._beating, None
        if beating is not None:
            beating.cancel()
            await asyncio.wait([beating])
        unfinished = list(self._inflight) + [entry_id for entry_id, _ in self._unchecked]
        self._buffer.clear()
        self._unchecked.clear()
        self._inflight.clear()
        if unfinished:
            try:
                await self._redis.xclaim(
                    self._stream,
                    self._group,
                    self.consumer,
                    0,
                    unfinished,
                    idle=max(self.claim_idle_ms + 1, _HANDED_BACK_IDLE_MS),
                    justid=True,
                )
            except Exception:
                log.warning("hitl: could not hand back %d resume job(s)", len(unfinished), exc_info=True)
            return
        try:  # nothing left with this consumer: leave no dead consumer behind in the group
            await self._reap(0, only=self.consumer)
        except Exception:
            log.debug("hitl: could not delete resume consumer %s", self.consumer, exc_info=True)

    def submit(self, job: ResumeJob) -> None:
        """Nothing to do: the decision is already in the stream, which is where jobs come from."""
        return None

    async def get(self) -> ResumeJob | None:
        if not self._buffer:
            await self._fill()
        return self._buffer.popleft() if self._buffer else None

    def wake(self) -> None:
        """Nothing to do: `get` returns within `block_ms` anyway."""
        return None

    async def renew(self, job: ResumeJob) -> None:
        """Nothing to do: the heartbeat re-claims every entry this consumer holds, this one included."""
        return None

    async def done(self, job: ResumeJob) -> None:
        """Acknowledge `job`'s entry. Raises if that fails: the caller retries (the entry stays held)."""
        if job.handle:
            reply = await self._acks.xack(self._stream, self._group, job.handle)
            if isinstance(reply, BaseException):  # an error reply handed back as a value: it failed
                raise reply
            self._inflight.discard(job.handle)

    # --- reading ----------------------------------------------------------------------------------------
    async def _fill(self) -> None:
        try:
            await self._fill_buffer()
        except Exception:
            self._unreachable()
            raise

    async def _fill_buffer(self) -> None:
        if self._unchecked:
            await self._check()
            if self._buffer:
                return
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.claim_every_ms / 1000
            await self._in_group(self._read_own_pending)
            if self._recovering:  # Redis answers again: the quiet period starts now
                self._recovering = False
                self._claim_after = time.monotonic() + self.claim_idle_ms / 2000
            if now >= self._claim_after:
                await self._in_group(self._claim_abandoned)
            if now >= self._next_reap:
                self._next_reap = now + min(60.0, self.reap_idle_ms / 1000)
                try:
                    await self._reap(self.reap_idle_ms)
                except Exception:
                    log.debug("hitl: could not delete idle resume consumers", exc_info=True)
            await self._check()
            if self._buffer:
                return
        entries = _entries(await self._in_group(self._read_group, ">", "BLOCK", self._block_ms))
        if entries:
            self._last_read = _later(self._last_read, entries[-1][0])
        self._queue(entries)
        await self._check()

    async def _in_group(self, call: Any, *args: Any) -> Any:
        """`call(*args)`; when the group is gone (`NOGROUP`), create it again and call once more."""
        try:
            return await call(*args)
        except ResponseError as exc:
            if not _is_nogroup(exc):
                raise
        await self._create_group(self._recreate_at())
        return await call(*args)

    def _recreate_at(self) -> str:
        """Where a lost group starts again: just before the oldest entry this consumer still holds (read
        again, they are in the new group's pending list, so a crash of this process does not lose them),
        else at the last entry it read. Entries read again that were finished are skipped by their history."""
        if self._last_read is None:
            return "0"  # nothing read yet: from the start (the history filters what was resumed)
        held = [*self._inflight, *(entry_id for entry_id, _ in self._unchecked)]
        if not held:
            return self._last_read
        return min(_before(min(held, key=_order)), self._last_read, key=_order)

    async def _read_group(self, start: str, *block: str | int) -> Any:
        # XREADGROUP by its name: redis-py 8's `xreadgroup()` also computes a streaming-lag metric from
        # every reply, which cost more CPU than reading the entries (every event passes through here).
        return await self._redis.execute_command(
            "XREADGROUP",
            "GROUP",
            self._group,
            self.consumer,
            "COUNT",
            self._batch,
            *block,
            "STREAMS",
            self._stream,
            start,
        )

    async def _read_own_pending(self) -> None:
        """Entries pending with this consumer that it does not hold: a reply it never received, an
        acknowledgement that failed, or a restart under the same consumer name."""
        start = "0"
        while True:
            entries = _entries(await self._read_group(start))
            self._queue(entries)
            if len(entries) < self._batch:
                return
            start = entries[-1][0]

    def _queue(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        queued = {entry_id for entry_id, _ in self._unchecked}
        for entry in entries:
            if entry[0] not in self._inflight and entry[0] not in queued:
                self._unchecked.append(entry)
                queued.add(entry[0])

    async def _heartbeat(self) -> None:
        """Keep the entries this consumer holds from looking abandoned, however long a job takes. After a
        failed renewal it tries again soon: once Redis is back, its entries must look alive before the
        other consumers' quiet period (`_unreachable`) ends."""
        interval = self.claim_idle_ms / 3000
        delay = interval
        while True:
            await asyncio.sleep(delay)
            delay = interval
            held = list(self._inflight) + [entry_id for entry_id, _ in self._unchecked]
            if held:
                try:
                    await self._redis.xclaim(self._stream, self._group, self.consumer, 0, held, justid=True)
                except Exception as exc:
                    self._unreachable()
                    delay = min(interval, 0.5)
                    log.warning("hitl: could not renew %d resume job(s): %s: %s", len(held), type(exc).__name__, exc)
            reraise_lost_cancel()

    def _unreachable(self) -> None:
        """Redis failed us: once it answers again, do not take over other consumers' entries for half the
        claim idle time. Their idle times grew while nobody could renew anything; their owners renew them
        first (a failed heartbeat retries within 0.5 s), so a live consumer's work is not resumed twice."""
        self._recovering = True

    async def _claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            reply = await self._redis.xautoclaim(
                self._stream, self._group, self.consumer, self.claim_idle_ms, start_id=start, count=self._batch
            )
            start = text(reply[0])
            entries = [(text(i), {text(k): v for k, v in (f or {}).items()}) for i, f in reply[1]]
            self._queue(entries)
            if start == "0-0" or not entries:
                return

    async def _reap(self, idle_ms: int, *, only: str = "") -> int:
        removed = await self._redis.eval(_REAP_LUA, 1, self._stream, self._group, idle_ms, only)
        return int(removed)

    async def _check(self) -> None:
        """Turn queued entries into jobs, in order. If reading an entry's history fails, that entry and
        the ones after it stay queued for the next call (the error propagates: the caller waits)."""
        skip: list[str] = []
        try:
            while self._unchecked:
                entry_id, fields = self._unchecked[0]
                if entry_id in self._inflight:
                    self._unchecked.popleft()
                    continue
                job = await self._job(entry_id, fields)
                self._unchecked.popleft()
                if job is None:
                    skip.append(entry_id)
                    continue
                self._inflight.add(entry_id)
                self._buffer.append(job)
        finally:
            if skip:
                try:
                    await self._acks.xack(self._stream, self._group, *skip)
                except Exception:
                    # They stay pending with this consumer: the next look at its own entries skips them again.
                    log.warning("hitl: could not acknowledge %d skipped entries", len(skip), exc_info=True)

    async def _job(self, entry_id: str, fields: dict[str, Any]) -> ResumeJob | None:
        raw = fields.get("event")
        if raw is None:
            return None
        try:
            # Most entries are not decisions: their type alone says so, without decoding their records.
            if _type_of.decode(raw).type not in _DECISIONS:
                return None
            event = decode_event(raw)
        except Exception:
            log.warning("hitl: skipping undecodable stream entry %s", entry_id)
            return None
        if isinstance(event, RequestTimedOut) and not self._include_timeouts:
            return None
        if not isinstance(event, RequestResolved | RequestTimedOut):
            return None
        attempts = 0
        if self._history is not None:
            for record in await self._history.audit(event.id):
                past = record.event
                if isinstance(past, ResumeSucceeded) or (
                    isinstance(past, ResumeFailed) and not isinstance(past.retry_in_ms, int)
                ):
                    return None  # already resumed (or rejected for good) by an earlier consumer
                if isinstance(past, ResumeAttempted):
                    attempts += 1
        return ResumeJob(event.id, event.result, attempts=attempts, handle=entry_id, decision_id=entry_id)
