"""Every Redis key hitl-streams reads or writes, in one place.

The projection keys are byte-identical to the TypeScript `@hitl-sdk/state-ioredis` layout (REF §4.2), so
its `IoredisState` reads what we write. The keys we add (`events`, `audit:*`, `audits:*`, `ops:*`,
`lease:*`, `meta:*`) live under the same prefix. With `cluster=True` the prefix is wrapped in a hash tag so
every key of one prefix lives in one slot and every Lua script stays single-slot.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from ..errors import ValidationError

__all__ = ["AUDIT_BUCKETS", "DEFAULT_TABLE", "OPS_PER_BUCKET", "Keys", "table_prefix"]

DEFAULT_TABLE = "hitl.human_requests"
AUDIT_BUCKETS = 1024
"""Requests' audit positions are spread over this many HASHes (`audits:{bucket}`), by CRC-32 of the id:
one field per request costs ~60 bytes where a LIST of its own cost ~260."""
_BUCKET_NAMES = tuple(f"{bucket:03x}" for bucket in range(AUDIT_BUCKETS))
"""Named once: formatting `:03x` on every write cost more than the CRC-32."""
OPS_PER_BUCKET = 64
"""Writes one process puts in one op-id HASH before it starts the next (see `Keys.ops`). A retried write
looks its op id up in that part only: a linear scan of a listpack, which at 64 entries costs Redis no more
instructions than a lookup in one hash table per second did (128: 3% more per write; 32: 1.4% fewer, and
~3 B more per write in key overhead). Busy processes share each part, so eight of them stay under Redis's
`hash-max-listpack-entries` (512); past that a part becomes a hash table, as one bucket per second was."""
_TABLE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)?")


def table_prefix(table_name: str) -> str:
    """`schema.table` → `schema:table`; an unqualified name is used as is (REF §4.1)."""
    if not isinstance(table_name, str) or _TABLE.fullmatch(table_name) is None:
        raise ValidationError(f'Invalid table name "{table_name}"')
    return table_name.replace(".", ":")


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix. `prefix` already carries the hash tag in cluster mode."""

    prefix: str

    @classmethod
    def for_table(cls, table_name: str = DEFAULT_TABLE, *, cluster: bool = False) -> Keys:
        prefix = table_prefix(table_name)
        return cls("{" + prefix + "}" if cluster else prefix)

    # --- projection: the TypeScript layout ------------------------------------------------------------
    def req(self, request_id: str) -> str:
        return f"{self.prefix}:req:{request_id}"

    def idx_token(self, token: str) -> str:
        return f"{self.prefix}:idx:token:{token}"

    def idx_ext(self, external_id: str) -> str:
        return f"{self.prefix}:idx:ext:{external_id}"

    def idx_status(self, status: str) -> str:
        return f"{self.prefix}:idx:status:{status}"

    @property
    def idx_all(self) -> str:
        return f"{self.prefix}:idx:all:req"

    def idx_ns(self, namespace: str) -> str:
        return f"{self.prefix}:idx:ns:{namespace}"

    def idx_ns_status(self, namespace: str, status: str) -> str:
        return f"{self.prefix}:idx:ns:{namespace}:status:{status}"

    def idx_batch(self, batch_id: str) -> str:
        return f"{self.prefix}:idx:batch:{batch_id}"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}"

    def idx_batch_ext(self, external_id: str) -> str:
        return f"{self.prefix}:idx:batch:ext:{external_id}"

    def timeline_entry(self, entry_id: str) -> str:
        return f"{self.prefix}:timeline:entry:{entry_id}"

    def timeline(self, thread_id: str) -> str:
        return f"{self.prefix}:timeline:{thread_id}"

    def notify(self, delivery_id: str) -> str:
        return f"{self.prefix}:notify:{delivery_id}"

    def idx_notify_ext(self, external_id: str) -> str:
        return f"{self.prefix}:idx:notify:ext:{external_id}"

    @property
    def meta_migrations(self) -> str:
        return f"{self.prefix}:meta:migrations"

    # --- ours: reviewers (projected by migrations/0008_reviewers.py) -----------------------------------
    def reviewer(self, reviewer_id: str) -> str:
        """STRING: the reviewer as JSON (`id, name, email?, namespaces, addedAt, revokedAt?, currentToken?`)."""
        return f"{self.prefix}:reviewer:{reviewer_id}"

    @property
    def reviewers_all(self) -> str:
        """SET of every reviewer id ever added (revoked ones too: their records say so)."""
        return f"{self.prefix}:reviewers:all"

    def reviewer_by_name(self, name: str) -> str:
        """STRING: the id of the reviewer with this name (the latest, if a revoked name was added again)."""
        return f"{self.prefix}:reviewers:by-name:{name}"

    def reviewer_by_email(self, email: str) -> str:
        """STRING: the id of the reviewer with this email (lower case), for an SSO proxy's identity."""
        return f"{self.prefix}:reviewers:by-email:{email}"

    def credential(self, token_hash: str) -> str:
        """STRING: a credential (sign-in link, API token, session) as JSON, under the SHA-256 (hex) of its
        token; links and sessions expire (Redis TTL) at their `expiresAt`."""
        return f"{self.prefix}:credential:{token_hash}"

    # --- ours: history and its bookkeeping ------------------------------------------------------------
    @property
    def events(self) -> str:
        """The Redis Stream holding every change, in order."""
        return f"{self.prefix}:events"

    def audit(self, subject_id: str) -> str:
        """LIST of stream ids of the events about one batch, notify delivery or thread (before step 0007,
        about a request too)."""
        return f"{self.prefix}:audit:{subject_id}"

    def audit_bucket(self, request_id: str) -> str:
        """HASH whose field `request_id` holds the stream ids of the events about that request, space
        separated, oldest first. The bucket is CRC-32 of the id (UTF-8) modulo `AUDIT_BUCKETS`, in hex."""
        return f"{self.prefix}:audits:{_BUCKET_NAMES[zlib.crc32(request_id.encode()) % AUDIT_BUCKETS]}"

    def ops(self, second: int, part: int = 0) -> str:
        """HASH of the outcomes of writes begun in one second (Unix time): field = the write's op id (12
        random bytes, in base64), value = its stream id. Kept briefly (it expires after the op TTL) so that
        a retried write returns its first outcome instead of running twice. A process that begins more than
        `OPS_PER_BUCKET` writes in one second puts the next ones in `ops:{second}:1`, `:2`, ...: a HASH of
        at most 512 short fields stays a listpack (~35 bytes per write) where one of thousands becomes a
        hash table (~110)."""
        return f"{self.prefix}:ops:{second}" if part == 0 else f"{self.prefix}:ops:{second}:{part}"

    def lease(self, name: str) -> str:
        """A short-lived claim (e.g. `deliver:{id}`: one replica is delivering that request)."""
        return f"{self.prefix}:lease:{name}"

    @property
    def idx_due(self) -> str:
        """ZSET of requests and batches with a server-side schedule, scored by the epoch milliseconds of
        their next due item (a reminder or the deadline); step 0009."""
        return f"{self.prefix}:idx:due"

    def schedule(self, subject_id: str) -> str:
        """JSON of a subject's server-side schedule (anchor, deadline, reminders), as set; step 0009."""
        return f"{self.prefix}:schedule:{subject_id}"

    def schedule_next(self, subject_id: str) -> str:
        """JSON of what is due next for a subject (`{"fire", "at"}`, or `{"done": reason}`); step 0009."""
        return f"{self.prefix}:schedule:next:{subject_id}"

    @property
    def meta_lock(self) -> str:
        """Held (with expiry) while migrations or a rebuild run."""
        return f"{self.prefix}:meta:lock"

    @property
    def meta_pause(self) -> str:
        """Exists (with expiry) while a rebuild swaps the projection in: writes wait for it to go away."""
        return f"{self.prefix}:meta:pause"

    @property
    def meta_projection(self) -> str:
        """HASH describing the projection: the last stream id it was built from, and when."""
        return f"{self.prefix}:meta:projection"

    @property
    def resume_group(self) -> str:
        """Consumer group name on `events` that drives workflow resumption."""
        return "hitl-resume"

    @property
    def meta_written(self) -> str:
        """SET of the names of every key a replay into this (scratch) prefix wrote or cleared, so that
        comparing, swapping in and deleting it cost O(its keys), never a SCAN of the whole keyspace."""
        return f"{self.prefix}:meta:written"

    @property
    def meta_cleared(self) -> str:
        """SET of the names in `meta_written` that a replay may have left absent (a ZREM, a deadline): the
        only scratch keys whose absence a swap must check for, so every other key costs one RENAME."""
        return f"{self.prefix}:meta:cleared"

    @property
    def meta_cursor(self) -> str:
        """STRING: where the replay script (`streams/replay_lua.py`) resumes reading the stream, kept by it
        between its calls; deleted when the replay ends."""
        return f"{self.prefix}:meta:cursor"

    def scratch(self, run_id: str) -> Keys:
        """A private prefix (same hash slot) that `verify` replays into."""
        return Keys(f"{self.prefix}:scratch:{run_id}")
