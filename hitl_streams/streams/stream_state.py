"""`StreamState`: the State protocol event-sourced on Redis Streams.

Every change is one event appended to `{prefix}:events` and projected, in the same Lua script, into the
key layout of the TypeScript `IoredisState` (see `keys.py`, `migrations/`). Reads come from the projection.
Read-modify-writes are compare-and-set on the subject's stored bytes, so nothing clobbers a concurrent
change; each write carries an op id, so a client retry of a write whose reply was lost is a no-op.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._random import random_base64, random_hex
from .._time import iso_to_ms, now_iso
from ..errors import (
    AlreadyResolvedError,
    DuplicateRequestError,
    DuplicateTokenError,
    HitlError,
    NotReplicatedError,
    UnknownBatchError,
    UnknownNotifyDeliveryError,
    UnknownRequestError,
    ValidationError,
)
from ..history import events as ev
from ..history.codec import Subject, decode_batch, decode_notify, decode_request, decode_timeline_entry
from ..history.keys import DEFAULT_TABLE, OPS_PER_BUCKET, Keys
from ..history.projection import Op, Projector
from ..history.reducer import apply
from ..namespaces import validate_filter, validate_namespace
from ..pagination import build_page, clamp_limit, decode_cursor, position_cursor, position_order
from ..records import (
    BatchRecord,
    HumanRequestRecord,
    InboxPage,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    NotifyDeliveryRecord,
    RequestStatus,
    TimelineEntry,
)
from ..results import HumanResult
from ._slots import Slots
from .adopt import AdoptReport, adopt
from .autobatch import AutoBatchRedis, autobatched
from .bulk import checked, run_commands
from .locks import RELEASE_LUA, RENEW_LUA
from .replay import DriftReport, ReplayProgress, ReplayStats, rebuild, verify
from .replies import event_field, text
from .schema import SchemaStatus, ensure_schema, schema_status
from .scripts import Guard, as_eval, commit_command, commit_outcome
from .stream_reviewers import StreamReviewers
from .subject_cache import SubjectCache

__all__ = ["StreamState"]

_MAX_CAS_ATTEMPTS = 64
_MAX_PAUSE_SECONDS = 120
"""How long a write waits for a rebuild's swap (`{prefix}:meta:pause`) before giving up."""
_MAX_ID = 512
_MAX_TOKEN = 4096

_default_projector: Projector | None = None

_T = TypeVar("_T")
_json = msgspec.json.Decoder()
_P = ParamSpec("_P")


def _bounded(
    method: Callable[Concatenate[StreamState, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[StreamState, _P], Coroutine[Any, Any, _T]]:
    """Run a public operation inside one of the state's slots (redis-py's pool raises, rather than waits,
    when more commands are in flight than it has connections, so we queue before that point), once the
    projection steps are applied (`ensure_schema`, checked here for every operation)."""

    async def run(self: StreamState, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        slots = self._slots
        if not slots.try_take():
            await slots.take()
        try:
            if not self._ready:
                await self.ensure_schema()
            return await method(self, *args, **kwargs)
        finally:
            slots.give()

    # By hand rather than functools.wraps, whose typing loses the ParamSpec under mypy.
    run.__name__, run.__qualname__, run.__doc__ = method.__name__, method.__qualname__, method.__doc__
    # `inspect.signature` (help(), IDEs, tooling that checks keyword names) follows this to the real one.
    setattr(run, "__wrapped__", method)  # noqa: B010
    return run


def _pool_size(redis: Any) -> int:
    pool = getattr(redis, "connection_pool", None)
    size = getattr(pool, "max_connections", None)
    return size if isinstance(size, int) and size > 0 else 64


def default_projector() -> Projector:
    """The steps shipped in `migrations/`, loaded once per process."""
    global _default_projector
    if _default_projector is None:
        _default_projector = Projector()
    return _default_projector


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _check_fragment(what: str, value: object, limit: int = _MAX_ID) -> str:
    """Caller-supplied strings become key names: bound them and keep control characters out."""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValidationError(f"{what} must be a non-empty string of at most {limit} characters")
    if _CONTROL.search(value) is not None:
        raise ValidationError(f"{what} must not contain control characters")
    return value


class StreamState:
    """State on Redis Streams. `redis` is a `redis.asyncio.Redis` (or `RedisCluster` with `cluster=True`),
    made with `decode_responses` either way."""

    kind = "redis-streams"

    def __init__(
        self,
        redis: Any,
        *,
        table_name: str = DEFAULT_TABLE,
        cluster: bool = False,
        projector: Projector | None = None,
        autobatch: bool = True,
        subject_cache_bytes: int = 32 * 2**20,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        if wait_replicas < 0 or wait_timeout_ms < 0:
            raise ValueError("wait_replicas and wait_timeout_ms must not be negative")
        self.redis = redis
        # With `wait_replicas`, every write is followed by `WAIT n timeout` on its own connection, and a
        # write that fewer replicas acknowledged raises NotReplicatedError (see _write).
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        # Hot-path commands go through `_io`: with `autobatch`, commands issued by concurrent tasks in one
        # loop tick share one socket write (hitl_streams/streams/autobatch.py). Each stays its own command, so every
        # script is still atomic on its own. Cluster clients and anything but a plain redis.asyncio.Redis
        # are used as given. Schema, locks, pipelines and rebuilds keep using `redis` itself.
        self._io: Any = autobatched(redis) if autobatch else redis
        # The commit's own path on the batching connection: no execute_command coroutine per write.
        self._send_now: Callable[[Sequence[Any]], asyncio.Future[Any] | None] | None = (
            self._io.send_now if isinstance(self._io, AutoBatchRedis) else None
        )
        self.table_name = table_name
        self.cluster = cluster
        self.keys = Keys.for_table(table_name, cluster=cluster)
        self.projector = projector or default_projector()
        # The bytes of request records this process just wrote or read: a resolve of one of them commits
        # at once (compare-and-set on those bytes) instead of reading it first. See subject_cache.py.
        self._known = SubjectCache(subject_cache_bytes)
        self._req_prefix = self.keys.req("")
        self._op_second, self._op_count, self._op_bucket = 0, 0, ""
        self._ready = False
        self._ready_lock = asyncio.Lock()
        # Leave a few connections of the client's pool to whatever else shares the client.
        self._slots = Slots(max(1, min(_pool_size(redis) - 4, 256)))
        self.reviewers = StreamReviewers(self)
        """Reviewers and their credentials (a `ReviewerDirectory`), as events in this prefix's history."""

    # --- schema ---------------------------------------------------------------------------------------
    async def ensure_schema(self) -> None:
        """Apply pending projection steps (replaying history through them). Idempotent, safe across
        replicas; a failure is not remembered, so the next call retries."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await ensure_schema(self.redis, self.keys, self.projector)
                self._ready = True

    async def schema_status(self) -> SchemaStatus:
        """Applied and pending projection steps."""
        return await schema_status(self.redis, self.keys, self.projector)

    # --- the write path -------------------------------------------------------------------------------
    async def _commit(
        self,
        make_event: Callable[[Subject | None], ev.Event],
        *,
        subject_key: str | None = None,
        decode: Callable[[bytes | str], Subject] | None = None,
        guards: Sequence[Guard] = (),
        on_guard_failure: Callable[[Guard], Any] | None = None,
        compare: bool = True,
        then: ev.Event | None = None,
        side: Sequence[Op] = (),
    ) -> str:
        """Append one event and its projection atomically; returns its stream id.

        With `subject_key`, the subject's current bytes are read, the event is made from the decoded
        record, and the write only happens if the bytes are still the same (else it re-reads and tries
        again). `make_event` raises the domain errors (unknown, already resolved). `compare=False` reads
        the subject without that condition (for a part of it that no event changes). `then`: an audit
        event appended right after it, with its own projection, in the same script call (two events, one
        round trip). `side`: writes outside the projection made in that call too (a delivery lease's
        "L"/"U", see scripts.py).
        """
        # The write's op id: 96 random bits (a clash within one bucket is out of reach), in base64 (hex
        # would keep 8 more bytes per write for the op TTL), kept in the bucket of the second it began (and
        # of this process's count of writes in that second, see Keys.ops), which every retry names again.
        keys = self.keys
        second = int(time.time())
        if second != self._op_second:  # one key name per second (per part), not one per write
            self._op_second, self._op_count, self._op_bucket = second, 0, keys.ops(second)
        count = self._op_count = self._op_count + 1
        if count > OPS_PER_BUCKET and count % OPS_PER_BUCKET == 1:  # this process's next part
            self._op_bucket = keys.ops(second, count // OPS_PER_BUCKET)
        op_id, op_bucket = random_base64(12), self._op_bucket
        paused_since: float | None = None
        attempts = 0
        known = self._known
        tail: builtins.list[Op] = []
        if then is not None:  # an audit event changes no record: its projection needs no subject
            tail.append(("X", keys.events, (ev.encode_event(then),)))
            tail += self.projector.project(apply(then, None, keys)).items
        tail += side
        while attempts < _MAX_CAS_ATTEMPTS:
            raw: bytes | str | None = None
            guessed = False
            if subject_key is not None:
                raw = known.get(subject_key)
                guessed = raw is not None
                if raw is None:
                    raw = await self._io.get(subject_key)
            before = decode(raw) if raw is not None and decode is not None else None
            try:
                event = make_event(before)
            except HitlError:
                if not guessed or subject_key is None:
                    raise
                known.drop(subject_key)  # decide from the stored bytes, never from a guess
                continue
            ops = self.projector.project(apply(event, before, self.keys))
            if tail:
                ops.items += tail
            cas = (subject_key, b"" if raw is None else raw) if subject_key is not None and compare else None
            command = commit_command(
                keys.events, op_bucket, keys.meta_pause, op_id, ev.encode_event(event), guards, ops, cas
            )
            sent = self._send_now(command) if self._send_now is not None and not self.wait_replicas else None
            try:
                if sent is None:
                    reply = await self._write(command)
                else:  # as execute_command would, inline: one coroutine less on every write
                    try:
                        reply = await sent
                    except (RedisConnectionError, RedisTimeoutError) as lost:
                        reply = await self._io.resend(command, lost)
                    if isinstance(reply, BaseException):
                        if not isinstance(reply, RedisConnectionError | RedisTimeoutError):
                            raise reply
                        reply = await self._io.resend(command, reply)
                status, value = commit_outcome(reply)
            except NoScriptError:
                status, value = commit_outcome(await self._write(as_eval(command)))
            if status == 1:
                req_prefix = self._req_prefix
                for code, key, args in ops.items:
                    if code == "S" and key.startswith(req_prefix):
                        known.put(key, args[0])
                return value
            if status == 2:  # this op id ran before (a retried call): what is stored now is unknown
                if subject_key is not None:
                    known.drop(subject_key)
                return value
            failed_at = int(value)
            if failed_at == 0:
                # A rebuild is swapping a replayed projection in: wait, or the swap would revert this write.
                now = asyncio.get_running_loop().time()
                paused_since = now if paused_since is None else paused_since
                if now - paused_since > _MAX_PAUSE_SECONDS:
                    raise HitlError(f"writes to {self.keys.prefix} paused by a rebuild for over {_MAX_PAUSE_SECONDS}s")
                await asyncio.sleep(0.02)
                continue
            if failed_at > len(guards):  # the compare-and-set on the subject
                assert subject_key is not None
                known.drop(subject_key)
                if guessed:
                    continue  # the guess was stale: read the stored bytes (not a conflict of ours)
                attempts += 1
                continue  # a concurrent change: read again and decide again
            failed = guards[failed_at - 1]
            attempts += 1
            if on_guard_failure is not None:
                await on_guard_failure(failed)
            raise HitlError(f"write refused by a guard on {failed.key}")
        raise HitlError(f"{subject_key} changed {_MAX_CAS_ATTEMPTS} times while writing; giving up")

    def _write(self, command: Sequence[Any]) -> Awaitable[Any]:
        """Run one commit command; with `wait_replicas`, then `WAIT` on the same connection for that many
        replicas to acknowledge it (raising NotReplicatedError when fewer do within the timeout)."""
        if not self.wait_replicas:
            return self._io.execute_command(*command)  # type: ignore[no-any-return]  # no coroutine of ours
        return self._write_waiting(command)

    async def _write_waiting(self, command: Sequence[Any]) -> Any:
        wait = ("WAIT", self.wait_replicas, self.wait_timeout_ms)
        if self.cluster:
            reply, acknowledged = await _on_one_cluster_connection(self.redis, self.keys.events, [command, wait])
        else:
            # A pipeline (not MULTI) on a pooled connection: WAIT covers this connection's writes, and it
            # blocks only that connection, not the batching one everybody else shares.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.execute_command(*command)
                pipe.execute_command(*wait)
                reply, acknowledged = await pipe.execute(raise_on_error=False)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(acknowledged, BaseException):
            raise acknowledged
        if int(acknowledged) < self.wait_replicas:
            raise NotReplicatedError(int(acknowledged), self.wait_replicas, self.wait_timeout_ms)
        return reply

    # --- requests -------------------------------------------------------------------------------------
    @_bounded
    async def create(self, record: NewHumanRequest) -> None:
        await self._create(record, ())

    @_bounded
    async def create_leased(self, record: NewHumanRequest, lease: str, token: str, ttl_ms: int) -> None:
        """`create`, taking the lease `lease` with `token` for `ttl_ms` in the same script call (an
        `acquire_lease` that cannot fail: the new request's id is known to nobody yet). Nothing is written,
        the lease neither, when the create is refused."""
        side = (("L", self.keys.lease(lease), (token, str(ttl_ms))),)
        await self._create(record, side)

    async def _create(self, record: NewHumanRequest, side: Sequence[Op]) -> None:
        _check_fragment("id", record.id)
        _check_fragment("token", record.token, _MAX_TOKEN)
        validate_namespace(record.namespace)
        if record.batch_id is not None:
            self._check_batch_id(record.batch_id)
        token_key, req_key = self.keys.idx_token(record.token), self.keys.req(record.id)
        # A batch item with its batch's context: history names the batch's context instead of repeating it
        # (a 400-item batch would store its context 400 more times). Reading the batch needs no condition:
        # no event changes a batch's context.
        shares_context = record.batch_id is not None and record.context is not None
        batch_key = self.keys.batch(record.batch_id) if shares_context and record.batch_id is not None else None

        def make(batch: Subject | None) -> ev.Event:
            if isinstance(batch, BatchRecord) and batch.context == record.context:
                item = msgspec.structs.replace(record, context=None)
                return ev.RequestCreated(at=now_iso(), request=item, batch_context=True)
            return ev.RequestCreated(at=now_iso(), request=record)

        async def refused(guard: Guard) -> None:
            if guard.key == token_key:
                owner = await self._io.get(token_key)
                raise DuplicateTokenError(None if owner is None else text(owner))
            raise DuplicateRequestError("Human request", record.id)

        await self._commit(
            make,
            subject_key=batch_key,
            decode=decode_batch,
            guards=(Guard("nx", token_key), Guard("nx", req_key)),
            on_guard_failure=refused,
            compare=False,
            side=side,
        )

    @_bounded
    async def get(self, request_id: str) -> HumanRequestRecord | None:
        # _get's body, not a call to it: one coroutine less on the most frequent read.
        key = self.keys.req(request_id)
        raw = await self._io.execute_command("GET", key)
        if raw is None:
            return None
        record = decode_request(raw)
        self._known.put(key, raw)
        return record

    async def _get(self, request_id: str) -> HumanRequestRecord | None:
        key = self.keys.req(request_id)
        raw = await self._io.execute_command("GET", key)
        if raw is None:
            return None
        record = decode_request(raw)
        self._known.put(key, raw)
        return record

    async def _get_by_index(self, index_key: str) -> HumanRequestRecord | None:
        request_id = await self._io.execute_command("GET", index_key)
        return None if request_id is None else await self._get(text(request_id))

    @_bounded
    async def find_by_external_id(self, external_id: str) -> HumanRequestRecord | None:
        return await self._get_by_index(self.keys.idx_ext(external_id))

    @_bounded
    async def find_by_token(self, token: str) -> HumanRequestRecord | None:
        return await self._get_by_index(self.keys.idx_token(token))

    @_bounded
    async def set_external_id(self, request_id: str, external_id: str, plugin_id: str | None = None) -> None:
        await self._set_external_id(request_id, external_id, plugin_id, None)

    @_bounded
    async def record_delivery(
        self,
        request_id: str,
        external_id: str,
        plugin_id: str | None,
        delivered: ev.RequestDelivered | ev.RequestRedelivered,
        lease: tuple[str, str] | None = None,
    ) -> None:
        """`set_external_id`, then `record(delivered)`, in one atomic script call: the same two events, in
        that order (the first at the second's time), one round trip instead of two. With `lease` (name,
        token), that call also gives the delivery lease back if it is still ours (`release_lease`)."""
        if not isinstance(delivered, ev.RequestDelivered | ev.RequestRedelivered):
            raise ValidationError(f"record_delivery() takes a delivery event, not {type(delivered).__name__}")
        side = () if lease is None else (("U", self.keys.lease(lease[0]), (lease[1],)),)
        await self._set_external_id(request_id, external_id, plugin_id, delivered, side)

    async def _set_external_id(
        self,
        request_id: str,
        external_id: str,
        plugin_id: str | None,
        then: ev.Event | None,
        side: Sequence[Op] = (),
    ) -> None:
        _check_fragment("external id", external_id)
        at = now_iso() if then is None else then.at

        def make(before: Subject | None) -> ev.Event:
            if not isinstance(before, HumanRequestRecord):
                raise UnknownRequestError(request_id)
            key = plugin_id if plugin_id is not None else before.channel
            return ev.RequestExternalIdSet(at=at, id=request_id, key=key, external_id=external_id)

        await self._commit(make, subject_key=self.keys.req(request_id), decode=decode_request, then=then, side=side)

    @_bounded
    async def resolve(self, request_id: str, result: HumanResult) -> None:
        def make(before: Subject | None) -> ev.Event:
            if not isinstance(before, HumanRequestRecord):
                raise UnknownRequestError(request_id)
            if before.status != "pending":
                raise AlreadyResolvedError(request_id)
            return ev.resolution_event(request_id, result, now_iso())

        await self._commit(make, subject_key=self.keys.req(request_id), decode=decode_request)

    @_bounded
    async def resolve_from(
        self, request_id: str, decide: Callable[[HumanRequestRecord], HumanResult]
    ) -> tuple[HumanRequestRecord, HumanResult | None]:
        """Resolve a pending request with the result `decide` makes from its record: one round trip when
        this state knows the record's bytes (no read first). Returns the record as it was and the result
        written; for a request already resolved, the record as stored and `None` (nothing written: that
        is decided on the stored bytes, never on a guess). An unknown request raises UnknownRequestError;
        an exception from `decide` stops it without writing."""
        seen: builtins.list[HumanRequestRecord] = []
        made: builtins.list[HumanResult] = []

        def make(before: Subject | None) -> ev.Event:
            if not isinstance(before, HumanRequestRecord):
                raise UnknownRequestError(request_id)
            seen.append(before)
            if before.status != "pending":
                raise AlreadyResolvedError(request_id)
            made.append(decide(before))
            return ev.resolution_event(request_id, made[-1], now_iso())

        try:
            await self._commit(make, subject_key=self.keys.req(request_id), decode=decode_request)
        except AlreadyResolvedError:
            return seen[-1], None
        return seen[-1], made[-1]

    def _index_for(self, status: RequestStatus | None, namespace: str | None) -> str:
        validate_filter(status, namespace)
        if namespace:
            return self.keys.idx_ns_status(namespace, status) if status else self.keys.idx_ns(namespace)
        return self.keys.idx_status(status) if status else self.keys.idx_all

    async def _mget_requests(self, ids: Sequence[str]) -> builtins.list[HumanRequestRecord]:
        if not ids:
            return []
        values = await self._io.mget([self.keys.req(i) for i in ids])
        return [decode_request(v) for v in values if v is not None]

    @_bounded
    async def list(
        self,
        *,
        status: RequestStatus | None = None,
        namespace: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> InboxPage:
        size = clamp_limit(limit)
        index = self._index_for(status, namespace)
        after = decode_cursor(cursor) if cursor else None
        top: str | int = "+inf" if after is None else iso_to_ms(after[0])
        want = size + 1
        window = max(want, 64)
        ids: builtins.list[str] = []
        offset = 0
        while len(ids) < want:
            # The reply as the wire gives it ([[member, score], ...] on RESP3, flat on RESP2), paired here:
            # redis-py's withscores conversion (scores re-encoded to bytes and parsed again) was ~30% of a
            # page's CPU in a cProfile of the list walk.
            reply = await self._io.execute_command(
                "ZREVRANGEBYSCORE", index, top, "-inf", "WITHSCORES", "LIMIT", offset, window
            )
            flat = reply and not isinstance(reply[0], list | tuple)
            rows = list(zip(reply[::2], reply[1::2], strict=True)) if flat else reply
            for member, score in rows:
                member_id = text(member)
                if after is not None and not self._after_cursor(member_id, int(float(score)), after):
                    continue
                ids.append(member_id)
                if len(ids) >= want:
                    break
            if len(rows) < window:
                break
            offset += window
        return build_page(await self._mget_requests(ids), size)

    @staticmethod
    def _after_cursor(member_id: str, score: int, after: tuple[str, str]) -> bool:
        # Scores are createdAt in ms, so (score, id) orders exactly like (createdAt, id).
        cursor_score = iso_to_ms(after[0])
        return score < cursor_score or (score == cursor_score and member_id < after[1])

    @_bounded
    async def count(self, *, status: RequestStatus | None = None, namespace: str | None = None) -> int:
        return int(await self._io.zcard(self._index_for(status, namespace)))

    # --- batches --------------------------------------------------------------------------------------
    @staticmethod
    def _check_batch_id(batch_id: str) -> None:
        _check_fragment("batch id", batch_id)
        if batch_id.startswith("ext:"):  # would collide with {P}:idx:batch:ext:* (REF §4.2)
            raise ValidationError('batch id must not start with "ext:"')

    @_bounded
    async def create_batch(self, record: NewBatch) -> None:
        self._check_batch_id(record.id)

        def make(_: Subject | None) -> ev.Event:
            at = now_iso()
            batch = BatchRecord(
                id=record.id,
                channel=record.channel,
                message=record.message,
                actions=record.actions,
                context=record.context,
                created_at=at,
            )
            return ev.BatchCreated(at=at, record=batch)

        async def refused(_: Guard) -> None:
            raise DuplicateRequestError("Batch", record.id)

        await self._commit(make, guards=(Guard("nx", self.keys.batch(record.id)),), on_guard_failure=refused)

    @_bounded
    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        raw = await self._io.get(self.keys.batch(batch_id))
        return None if raw is None else decode_batch(raw)

    @_bounded
    async def set_batch_external_id(self, batch_id: str, external_id: str, plugin_id: str | None = None) -> None:
        _check_fragment("external id", external_id)

        def make(before: Subject | None) -> ev.Event:
            if not isinstance(before, BatchRecord):
                raise UnknownBatchError(batch_id)
            key = plugin_id if plugin_id is not None else before.channel
            return ev.BatchExternalIdSet(at=now_iso(), id=batch_id, key=key, external_id=external_id)

        await self._commit(make, subject_key=self.keys.batch(batch_id), decode=decode_batch)

    @_bounded
    async def list_by_batch(self, batch_id: str) -> builtins.list[HumanRequestRecord]:
        ids = await self._io.zrange(self.keys.idx_batch(batch_id), 0, -1)
        return await self._mget_requests([text(i) for i in ids])

    # --- timelines and notifications ------------------------------------------------------------------
    @_bounded
    async def append_timeline(self, entry: TimelineEntry) -> None:
        _check_fragment("timeline entry id", entry.id)
        _check_fragment("thread id", entry.thread_id)
        if entry.thread_id.startswith("entry:"):  # would collide with {P}:timeline:entry:* (REF §4.2)
            raise ValidationError('thread id must not start with "entry:"')

        async def refused(_: Guard) -> None:
            raise DuplicateRequestError("Timeline entry", entry.id)

        await self._commit(
            lambda _: ev.TimelineAppended(at=now_iso(), entry=entry),
            guards=(Guard("nx", self.keys.timeline_entry(entry.id)),),
            on_guard_failure=refused,
        )

    @_bounded
    async def timeline(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[TimelineEntry]:
        """The thread's entries, oldest first: all of them, or with `limit` a page of at most that many
        after `cursor` (the id of the last entry of the previous page), in O(log n + page) reads."""
        key = self.keys.timeline(thread_id)
        start, stop = 0, -1
        if cursor is not None:
            rank = await self._io.execute_command("ZRANK", key, cursor)
            if rank is None:
                raise ValidationError(f'Invalid timeline cursor "{cursor}"')
            start = int(rank) + 1
        if limit is not None:
            stop = start + clamp_limit(limit) - 1
        ids = await self._io.zrange(key, start, stop)
        if not ids:
            return []
        values = await self._io.mget([self.keys.timeline_entry(text(i)) for i in ids])
        return [decode_timeline_entry(v) for v in values if v is not None]

    @_bounded
    async def create_notify_delivery(self, record: NewNotifyDelivery) -> None:
        _check_fragment("notify delivery id", record.id)

        def make(_: Subject | None) -> ev.Event:
            at = now_iso()
            delivery = NotifyDeliveryRecord(
                id=record.id, channel=record.channel, message=record.message, group_id=record.group_id, created_at=at
            )
            return ev.NotifyCreated(at=at, record=delivery)

        async def refused(_: Guard) -> None:
            raise DuplicateRequestError("Notify delivery", record.id)

        await self._commit(make, guards=(Guard("nx", self.keys.notify(record.id)),), on_guard_failure=refused)

    @_bounded
    async def get_notify_delivery(self, delivery_id: str) -> NotifyDeliveryRecord | None:
        raw = await self._io.get(self.keys.notify(delivery_id))
        return None if raw is None else decode_notify(raw)

    @_bounded
    async def set_notify_delivery_external_id(self, delivery_id: str, external_id: str) -> None:
        _check_fragment("external id", external_id)

        def make(before: Subject | None) -> ev.Event:
            if not isinstance(before, NotifyDeliveryRecord):
                raise UnknownNotifyDeliveryError(delivery_id)
            return ev.NotifyExternalIdSet(at=now_iso(), id=delivery_id, external_id=external_id)

        await self._commit(make, subject_key=self.keys.notify(delivery_id), decode=decode_notify)

    # --- leases ---------------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, ttl_ms: int) -> str | None:
        """Claim `name` for `ttl_ms` unless someone holds it; the token to release it with, or `None`."""
        token = random_hex(12)
        taken = await self._io.execute_command("SET", self.keys.lease(name), token, "PX", ttl_ms, "NX")
        return token if taken else None

    async def renew_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend a lease we hold to `ttl_ms` from now; False if it is no longer ours."""
        renewed = await self._io.execute_command("EVAL", RENEW_LUA, 1, self.keys.lease(name), token, ttl_ms)
        return bool(renewed)

    async def release_lease(self, name: str, token: str) -> None:
        """Give a lease back, if it is still ours."""
        await self._io.execute_command("EVAL", RELEASE_LUA, 1, self.keys.lease(name), token)

    # --- health ---------------------------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise unless Redis answers (`PING`; a Redis still loading its dataset answers `LOADING`)."""
        await self.redis.execute_command("PING")

    # --- server-side schedules (step 0009) ------------------------------------------------------------
    @_bounded
    async def due_schedules(self, until_ms: int, limit: int = 100) -> builtins.list[str]:
        """Ids of the requests and batches whose next scheduled item is due at or before `until_ms`."""
        (ids,) = checked(
            await run_commands(self._io, [("ZRANGEBYSCORE", self.keys.idx_due, "-inf", until_ms, "LIMIT", 0, limit)])
        )
        return [text(i) for i in ids]

    @_bounded
    async def next_due_ms(self) -> int | None:
        """When the earliest scheduled item falls due (epoch ms), or None when nothing is scheduled."""
        (first,) = checked(await run_commands(self._io, [("ZRANGE", self.keys.idx_due, 0, 0, "WITHSCORES")]))
        if not first:
            return None
        # A flat [member, score] reply, or redis-py's [(member, score)] when its callbacks ran.
        score = first[0][1] if isinstance(first[0], list | tuple) else first[1]
        return int(float(score))

    @_bounded
    async def due_count(self) -> int:
        (count,) = checked(await run_commands(self._io, [("ZCARD", self.keys.idx_due)]))
        return int(count)

    @_bounded
    async def get_schedule(self, subject_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A subject's schedule as set (anchor, timeoutAt, reminders) and what is due next (`{"fire", "at"}`,
        or `{"done": reason}`); None when it has none."""
        spec, following = checked(
            await run_commands(
                self._io, [("GET", self.keys.schedule(subject_id)), ("GET", self.keys.schedule_next(subject_id))]
            )
        )
        if spec is None:
            return None
        return _json.decode(spec), ({} if following is None else _json.decode(following))

    # --- history --------------------------------------------------------------------------------------
    @_bounded
    async def record(self, event: ev.Event) -> None:
        """Append an audit event (delivered, reminded, resumed, ...). It changes no record."""
        if not isinstance(event, ev.AUDIT_EVENTS):
            raise ValidationError(f"record() takes audit events only, not {type(event).__name__}")
        await self._commit(lambda _: event)

    @_bounded
    async def audit(
        self, subject_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> builtins.list[ev.AuditRecord]:
        """Every event about one request, batch, notify delivery or thread, oldest first, in
        O(its own events) through the audit index. With `limit`, a page of at most that many after
        `cursor` (the `position` of the last record of the previous page): only the page's events are
        read and decoded."""
        after = position_cursor(cursor) if cursor is not None else None
        size = None if limit is None else clamp_limit(limit)
        listed, field = await self._audit_positions(subject_id, cursor, size)
        # A request's events (its field) and a batch's, delivery's or thread's (its LIST): one id can be both.
        positions = [text(p) for p in listed]
        if field is not None:
            positions = sorted({*positions, *text(field).split(" ")}, key=position_order)
        if after is not None:
            positions = [p for p in positions if position_order(p) > after]
        if size is not None:
            positions = positions[:size]
        if not positions:
            return []
        events = self.keys.events
        found = await run_commands(self._io, [("XRANGE", events, position, position) for position in positions])
        return [
            ev.AuditRecord(position=text(rows[0][0]), event=ev.decode_event(_field(rows[0][1])))
            for rows in checked(found)
            if rows
        ]

    async def _audit_positions(self, subject_id: str, cursor: str | None, size: int | None) -> tuple[Any, Any]:
        """The subject's LIST of positions (for a page, only the part it needs: the LIST is in stream order,
        so the page starts right after the cursor's own entry) and its request field."""
        audit_list = self.keys.audit(subject_id)
        field_read = ("HGET", self.keys.audit_bucket(subject_id), subject_id)
        if size is None:
            listed, field = checked(await run_commands(self._io, [("LRANGE", audit_list, 0, -1), field_read]))
            return listed, field
        start = 0
        if cursor is not None:
            index = await self._io.execute_command("LPOS", audit_list, cursor)
            if index is None:  # the cursor is not in the LIST (a request field's position): read it whole
                listed, field = checked(await run_commands(self._io, [("LRANGE", audit_list, 0, -1), field_read]))
                return listed, field
            start = int(index) + 1
        listed, field = checked(
            await run_commands(self._io, [("LRANGE", audit_list, start, start + size - 1), field_read])
        )
        return listed, field

    async def history(
        self, *, since: str | None = None, until: str | None = None, batch_size: int = 1000
    ) -> AsyncIterator[ev.AuditRecord]:
        """Every event from `since` to `until` (stream ids, inclusive), streamed in batches."""
        start = since or "-"
        while True:
            rows = await self.redis.xrange(self.keys.events, min=start, max=until or "+", count=batch_size)
            for position, fields in rows:
                yield ev.AuditRecord(position=text(position), event=ev.decode_event(_field(fields)))
            if len(rows) < batch_size:
                return
            start = "(" + text(rows[-1][0])

    # --- replay ---------------------------------------------------------------------------------------
    async def rebuild(
        self, *, progress: Callable[[ReplayProgress], None] | None = None, sweep: bool | None = None
    ) -> ReplayStats:
        """Rewrite the whole projection from history. Byte-identical to the live projection when both
        are right. Writers may keep writing: they wait while the replayed projection is swapped in.
        `sweep`: also delete keys under the prefix that no event names (a SCAN of the whole keyspace);
        by default only when the database is not much larger than the prefix (`replay.SWEEP_RATIO`)."""
        await self.ensure_schema()
        return await rebuild(self.redis, self.keys, self.projector, progress=progress, sweep=sweep)

    async def verify(
        self, *, progress: Callable[[ReplayProgress], None] | None = None, sweep: bool | None = None
    ) -> DriftReport:
        """Compare the projection with a replay of history, without touching the projection. `sweep` as
        for `rebuild`: whether to look for keys no event names (`DriftReport.swept` says if it did)."""
        await self.ensure_schema()
        return await verify(self.redis, self.keys, self.projector, progress=progress, sweep=sweep)

    async def adopt(self, *, progress: Callable[[ReplayProgress], None] | None = None) -> AdoptReport:
        """Take over a prefix written by the TypeScript `IoredisState` (projection keys, no history):
        history starts with one imported event per record (see `hitl_streams.streams.adopt`)."""
        report = await adopt(self.redis, self.keys, self.projector, progress=progress)
        self._ready = False
        return report


async def _on_one_cluster_connection(cluster: Any, key: str, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send `commands` on one connection of the node serving `key` (WAIT has no key a cluster client
    could route by); their replies, an error reply as its exception. A `MOVED` reply or a broken
    connection (a failover) refreshes the client's slot map and tries again, a few times: re-sending a
    write is safe (op ids)."""
    for attempt in range(_CLUSTER_ATTEMPTS):
        node = cluster.get_node_from_key(key)
        connection = node.acquire_connection()
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except (RedisConnectionError, RedisTimeoutError):
            await connection.disconnect()  # replies may be left unread: never hand the connection back dirty
            node.release(connection)
            if attempt == _CLUSTER_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.25)
            await cluster.nodes_manager.initialize()
            continue
        except BaseException:
            await connection.disconnect()
            node.release(connection)
            raise
        node.release(connection)
        if isinstance(replies[0], MovedError) and attempt < _CLUSTER_ATTEMPTS - 1:
            await cluster.nodes_manager.move_slot(replies[0])
            continue
        return replies
    raise AssertionError("unreachable")


_CLUSTER_ATTEMPTS = 4


def _field(fields: Any) -> bytes | str:
    value = event_field(fields)
    if value is None:
        raise HitlError("stream entry without an 'event' field")
    return value  # type: ignore[no-any-return]
