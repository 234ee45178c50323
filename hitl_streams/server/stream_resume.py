"""`StreamResumeQueue`: resume jobs driven by the Redis stream of `StreamState` (the outbox is the history).

Every decision is a `request.resolved` / `request.timed_out` entry in `Keys(prefix).events`. A consumer
group (`Keys.resume_group`) reads them:

- `XREADGROUP ... >` with `BLOCK` hands out new entries as soon as they are appended (no polling delay);
- entries of other event types are acknowledged at once;
- an entry stays in this consumer's pending list until the workflow is resumed (`XACK` in `done`); while
  it is in flight (a slow resolver call, a retry's backoff) it is re-claimed (`XCLAIM ... JUSTID`) every
  third of `claim_idle_ms`, so its idle time stays low and no other consumer takes it over;
- `XAUTOCLAIM` takes over entries another consumer left idle longer than `claim_idle_ms` (it crashed);
- on a clean stop, unfinished entries are made claimable at once (`XCLAIM ... IDLE`), so the next
  process picks them up on its first `XAUTOCLAIM`;
- before running an entry, the request's audit trail is read: an entry whose request was already
  resumed (a consumer died between resuming and `XACK`) is acknowledged and skipped, and earlier
  attempts are counted so attempt numbers continue across restarts.

The group is created at the start of the stream (`0`), so decisions recorded while no server ran are
resumed too.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
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


class StreamResumeQueue:
    """A `ResumeQueue` reading decisions from the history stream with a consumer group."""

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        state: State,
        *,
        consumer: str | None = None,
        claim_idle_ms: int = 60_000,
        block_ms: int = 250,
        batch: int = 100,
        include_timeouts: bool = True,
    ) -> None:
        self._redis = redis
        self._acks = autobatched(redis)  # XACK, one per job: on the batching link, not a pool round trip
        self._keys = keys
        self._history: Auditable | None = state if isinstance(state, Auditable) else None
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self._claim_idle_ms = claim_idle_ms
        self._block_ms = block_ms
        self._batch = batch
        self._include_timeouts = include_timeouts
        self._buffer: collections.deque[ResumeJob] = collections.deque()
        self._inflight: set[str] = set()
        self._own_backlog = True
        self._next_claim = 0.0
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
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._own_backlog = True
        self._next_claim = 0.0
        if self._beating is None or self._beating.done():
            self._beating = asyncio.create_task(self._heartbeat(), name="hitl-resume-heartbeat")

    async def stop(self) -> None:
        """Hand unfinished entries back: make them claimable by the next consumer right away."""
        beating, self._beating = self._beating, None
        if beating is not None:
            beating.cancel()
            await asyncio.wait([beating])
        unfinished = list(self._inflight) + [job.handle for job in self._buffer if job.handle]
        self._buffer.clear()
        self._inflight.clear()
        if unfinished:
            try:
                await self._redis.xclaim(
                    self._stream,
                    self._group,
                    self.consumer,
                    0,
                    unfinished,
                    idle=self._claim_idle_ms + 1,
                    justid=True,
                )
            except Exception:
                log.warning("hitl: could not hand back %d resume job(s)", len(unfinished), exc_info=True)

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
        """Nothing to do: the heartbeat re-claims every entry in flight, this one included."""
        return None

    async def done(self, job: ResumeJob) -> None:
        if job.handle:
            await self._acks.xack(self._stream, self._group, job.handle)
            self._inflight.discard(job.handle)

    # --- reading ----------------------------------------------------------------------------------------
    async def _fill(self) -> None:
        if self._own_backlog:
            # Our own pending entries first (a restart under the same consumer name).
            entries = _entries(await self._read_group("0"))
            self._own_backlog = bool(entries) and len(entries) >= self._batch
            await self._take(entries)
            if self._buffer:
                return
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self._claim_idle_ms / 2000
            await self._claim_abandoned()
            if self._buffer:
                return
        await self._take(_entries(await self._read_group(">", "BLOCK", self._block_ms)))

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

    async def _heartbeat(self) -> None:
        """Keep the entries this consumer works on from looking abandoned, however long a job takes."""
        while True:
            await asyncio.sleep(self._claim_idle_ms / 3000)
            if self._inflight:
                try:
                    await self._redis.xclaim(
                        self._stream, self._group, self.consumer, 0, list(self._inflight), justid=True
                    )
                except Exception:
                    log.warning("hitl: could not renew %d resume job(s)", len(self._inflight), exc_info=True)
            reraise_lost_cancel()

    async def _claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            reply = await self._redis.xautoclaim(
                self._stream, self._group, self.consumer, self._claim_idle_ms, start_id=start, count=self._batch
            )
            start = text(reply[0])
            entries = [(text(i), {text(k): v for k, v in (f or {}).items()}) for i, f in reply[1]]
            await self._take(entries)
            if start == "0-0" or not entries:
                return

    async def _take(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        skip: list[str] = []
        for entry_id, fields in entries:
            if entry_id in self._inflight:
                continue
            job = await self._job(entry_id, fields)
            if job is None:
                skip.append(entry_id)
                continue
            self._inflight.add(entry_id)
            self._buffer.append(job)
        if skip:
            await self._acks.xack(self._stream, self._group, *skip)

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
        return ResumeJob(event.id, event.result, attempts=attempts, handle=entry_id)
