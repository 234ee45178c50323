"""Adopting a TypeScript `IoredisState` deployment: its projection keys become history (SPEC §5.6).

A prefix written by the TypeScript SDK holds the projection keys of REF §4.2 and no stream. `adopt`
turns it into a `StreamState` prefix whose history starts at adoption:

1. Under the prefix lock, refuse if the prefix already has history. SCAN every key under the prefix and
   classify it by name and Redis type; refuse (changing nothing) if a key is not part of the TypeScript
   layout, a record cannot be decoded, a record's id differs from its key, or decoding would drop a field.
2. Synthesize one imported event per record (`batch.imported`, `request.imported`, `notify.imported`,
   `timeline.imported`), in `createdAt` order with a batch before its items, into a staging stream.
3. Replay that stream into a scratch prefix, compare it with the live keys (the report's `rewritten`,
   `repaired`, `added`, `dropped`), swap it in, move the stream into place, record the ledger. `verify`
   is clean afterwards by construction.

Decisions (what "nothing lost or changed in meaning" means here):
- Records are the truth. Values are rewritten as canonical JSON through the tolerant decoders, exactly as
  the TypeScript `parseHumanRequest` reads them: legacy action shapes (REF §5.10) become action lists,
  cjson damage in actions (`options: {}`) and `externalIds: {}` are repaired, key order is canonical.
  Arbitrary JSON (`context`, `detail`) is kept as stored, so a `{}` that cjson made of `[]` stays `{}`
  (its original cannot be known; the TypeScript reader sees `{}` as well).
- Sorted-set indexes (status, all, namespace, batch items, timelines) are regenerated from the records.
  Legacy SET-typed status/all indexes (TypeScript migration 002 never ran) become ZSETs; members missing
  after an interrupted TypeScript pipeline are added; a member left in the wrong status set by the
  TypeScript lost-update race (REF §10 item 19) follows its record; members whose record is gone are
  dropped (the TypeScript reader already skipped them). Each such key is listed in `repaired`/`dropped`.
- Point lookups (`idx:token`, `idx:ext`, `idx:batch:ext`, `idx:notify:ext`) are kept exactly, including
  stale entries the TypeScript state never deleted: `find_by_external_id(old message id)` answers the
  same request after adoption (our own projection never deletes lookup entries either). Entries whose
  subject does not exist are dropped (they answered "not found" already). A missing entry a record
  implies is added. The imported events carry these lists (`tokenIndex`, `extIndex`) when they differ
  from what the record implies, so a replay reproduces them.
- The TypeScript ledger ids in `{P}:meta:migrations` are kept; ours are added.

TypeScript writers must be stopped while adopting (the TypeScript state takes no lock). A value that
changes between the two reads of a record aborts the adoption before anything live is touched.
Interrupting it (Ctrl-C) is safe: until the swap nothing live changes, the swap only replaces records by
their canonical equivalent, and the stream is moved into place last, so running `adopt` again works.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .._time import iso_to_ms, now_iso
from ..errors import SchemaError
from ..history import events as ev
from ..history.codec import Subject, decode_batch, decode_notify, decode_request, decode_timeline_entry, encode
from ..history.keys import Keys
from ..history.projection import Projector
from ..records import BatchRecord, HumanRequestRecord, NotifyDeliveryRecord, TimelineEntry
from .locks import prefix_lock
from .replay import DriftReport, ReplayProgress, _compare, _delete_prefix, replay_into, swap_in
from .replies import text

__all__ = ["AdoptError", "AdoptReport", "adopt"]

_CHUNK = 500
_RECORD_KINDS = {"batch": 0, "req": 1, "notify": 2, "entry": 3}
"""Record categories and their rank among records created in the same millisecond."""
_DECODERS: dict[str, Callable[[bytes | str], Subject]] = {
    "req": decode_request,
    "batch": decode_batch,
    "notify": decode_notify,
    "entry": decode_timeline_entry,
}
_KEY_PREFIX = {"req": "req:", "batch": "batch:", "notify": "notify:", "entry": "timeline:entry:"}
_LOOKUPS = {"token": "idx:token:", "ext": "idx:ext:", "batch_ext": "idx:batch:ext:", "notify_ext": "idx:notify:ext:"}
_MAX_PROBLEMS = 20


class AdoptError(SchemaError):
    """The prefix cannot be adopted as it is; nothing was changed."""


@dataclass(slots=True)
class AdoptReport:
    """What an adoption did. Key lists hold live key names, sorted."""

    requests: int = 0
    batches: int = 0
    timeline_entries: int = 0
    notify_deliveries: int = 0
    events: int = 0
    last_position: str | None = None
    rewritten: list[str] = field(default_factory=list)
    """Records whose bytes changed: canonical JSON (key order, legacy actions, cjson damage repaired)."""
    repaired: list[str] = field(default_factory=list)
    """Index keys whose content changed to match the records (legacy SET type, missing or stray members)."""
    added: list[str] = field(default_factory=list)
    """Index keys the records imply that were missing (the audit index, which is always new, not counted)."""
    dropped: list[str] = field(default_factory=list)
    """Keys removed: lookups and indexes pointing only at subjects that do not exist."""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "batches": self.batches,
            "timelineEntries": self.timeline_entries,
            "notifyDeliveries": self.notify_deliveries,
            "events": self.events,
            "lastPosition": self.last_position,
            "rewritten": self.rewritten,
            "repaired": self.repaired,
            "added": self.added,
            "dropped": self.dropped,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class _Found:
    """What the first read of the prefix learned. Records are kept as (sort key, key, checksum) only."""

    records: list[tuple[tuple[int, int, str], str, int]] = field(default_factory=list)
    lookups: dict[str, dict[str, str]] = field(default_factory=lambda: {kind: {} for kind in _LOOKUPS})
    claims: dict[str, list[tuple[tuple[int, int, str], str, list[str]]]] = field(
        default_factory=lambda: {kind: [] for kind in _LOOKUPS}
    )
    """Per lookup kind: (sort key, subject id, values the record implies)."""
    batch_first_item: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _classify(suffix: str, kind: str) -> str:
    """The category of one key under the prefix, from its name and Redis type."""
    if suffix == "events" or suffix.startswith(("meta:", "ops:", "op:", "scratch:", "audit:", "audits:")):
        return "ours"
    string, zset = kind == "string", kind == "zset"
    for category in ("req", "batch", "notify", "entry"):
        if string and suffix.startswith(_KEY_PREFIX[category]):
            return category
    if zset and suffix.startswith("timeline:"):
        return "thread"
    for category in ("token", "batch_ext", "notify_ext", "ext"):
        if string and suffix.startswith(_LOOKUPS[category]):
            return category
    if suffix in ("idx:status:pending", "idx:status:resolved", "idx:all:req") and kind in ("zset", "set"):
        return "index"
    if zset and suffix.startswith(("idx:ns:", "idx:batch:")):
        return "index"
    return "unknown"


def _external_values(record: HumanRequestRecord | BatchRecord) -> list[str]:
    values = [record.external_id] if record.external_id else []
    values.extend((record.external_ids or {}).values())
    return list(dict.fromkeys(values))


def _lost_fields(raw: bytes | str, record: Subject) -> list[str]:
    """Top-level (and `result`) fields of the stored JSON that the canonical value would not keep."""
    original = msgspec.json.decode(raw)
    canonical = msgspec.json.decode(encode(record))
    if not isinstance(original, dict):
        return ["<not a JSON object>"]
    lost = [k for k, v in original.items() if k not in canonical and k != "fields" and v not in (None, {}, [])]
    before, after = original.get("result"), canonical.get("result")
    if isinstance(before, dict) and isinstance(after, dict):
        lost += [f"result.{k}" for k, v in before.items() if k not in after and v not in (None, {}, [])]
    return lost


def _sort_ms(record: Subject) -> int:
    return iso_to_ms(record.created_at)


async def _read_strings(redis: Any, names: list[str]) -> list[Any]:
    return list(await redis.mget(names)) if names else []


async def _scan(redis: Any, keys: Keys, found: _Found, tick: Callable[[int], None]) -> None:
    """First read: classify every key, decode every record, collect the lookup indexes."""
    base = len(keys.prefix) + 1
    names: list[str] = []

    async def chunk(batch: list[str]) -> None:
        pipe = redis.pipeline(transaction=False)
        for name in batch:
            pipe.type(name)
        categories = [_classify(n[base:], text(t)) for n, t in zip(batch, await pipe.execute(), strict=True)]
        strings = [(n, c) for n, c in zip(batch, categories, strict=True) if c in _RECORD_KINDS or c in _LOOKUPS]
        values = await _read_strings(redis, [n for n, _ in strings])
        for (name, category), raw in zip(strings, values, strict=True):
            if raw is None:
                continue  # deleted since the SCAN saw it
            if category in _LOOKUPS:
                found.lookups[category][name[base + len(_LOOKUPS[category]) :]] = text(raw)
            else:
                _take_record(found, name, name[base + len(_KEY_PREFIX[category]) :], category, raw)
        found.unknown += [n for n, c in zip(batch, categories, strict=True) if c == "unknown"]
        tick(len(batch))

    async for raw_name in redis.scan_iter(match=keys.prefix + ":*", count=1000):
        names.append(text(raw_name))
        if len(names) >= _CHUNK:
            await chunk(names)
            names = []
    if names:
        await chunk(names)


def _take_record(found: _Found, name: str, key_id: str, category: str, raw: bytes | str) -> None:
    try:
        record = _DECODERS[category](raw)
        order = (_sort_ms(record), _RECORD_KINDS[category], record.id)
        lost = _lost_fields(raw, record)
    except Exception as exc:  # any failure to read a record stops the adoption with its key named
        found.problems.append(f"{name}: cannot be decoded ({type(exc).__name__}: {exc})")
        return
    if record.id != key_id:
        found.problems.append(f'{name}: holds the record of id "{record.id}"')
        return
    if lost:
        found.problems.append(f"{name}: fields hitl-streams does not know would be lost: {', '.join(lost)}")
        return
    data = raw.encode() if isinstance(raw, str) else raw
    found.records.append((order, name, zlib.crc32(data)))
    match record:
        case HumanRequestRecord():
            found.claims["token"].append((order, record.id, [record.token]))
            found.claims["ext"].append((order, record.id, _external_values(record)))
            if record.batch_id is not None:
                first = found.batch_first_item.get(record.batch_id, order[0])
                found.batch_first_item[record.batch_id] = min(first, order[0])
        case BatchRecord():
            found.claims["batch_ext"].append((order, record.id, _external_values(record)))
        case NotifyDeliveryRecord():
            found.claims["notify_ext"].append((order, record.id, [record.external_id] if record.external_id else []))
        case _:
            pass


def _owned(
    index: dict[str, str], claims: Iterable[tuple[tuple[int, int, str], str, list[str]]], key_prefix: str
) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Which lookup values each subject owns: the existing index entries that point at an existing
    subject, plus the values a record implies whose entry is missing (the last record in import order
    wins, as the last TypeScript write did). Returns (owned per subject, implied per subject, dropped keys)."""
    ordered = sorted(claims)
    exists = {subject for _, subject, _ in ordered}
    owner = {value: subject for value, subject in index.items() if subject in exists}
    dropped = sorted(key_prefix + value for value, subject in index.items() if subject not in exists)
    implied: dict[str, list[str]] = {}
    for _, subject, values in ordered:
        implied[subject] = values
        for value in values:
            if value not in index:
                owner[value] = subject
    owned: dict[str, list[str]] = {}
    for value, subject in owner.items():
        owned.setdefault(subject, []).append(value)
    return {s: sorted(v) for s, v in owned.items()}, implied, dropped


def _explicit(owned: dict[str, list[str]], implied: dict[str, list[str]], subject: str) -> list[str] | UnsetType:
    """The lookup list an imported event carries: `UNSET` when it is what the record implies."""
    mine = owned.get(subject, [])
    return UNSET if sorted(set(implied.get(subject, []))) == mine else mine


def _event(record: Subject, at: str, lookups: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]]) -> ev.Event:
    match record:
        case HumanRequestRecord():
            return ev.RequestImported(
                at=at,
                record=record,
                token_index=_explicit(*lookups["token"], record.id),
                ext_index=_explicit(*lookups["ext"], record.id),
            )
        case BatchRecord():
            return ev.BatchImported(at=at, record=record, ext_index=_explicit(*lookups["batch_ext"], record.id))
        case NotifyDeliveryRecord():
            return ev.NotifyImported(at=at, record=record, ext_index=_explicit(*lookups["notify_ext"], record.id))
        case TimelineEntry():
            return ev.TimelineImported(at=at, entry=record)
    raise AssertionError(f"not a record: {record!r}")  # pragma: no cover


def _refuse(found: _Found, keys: Keys) -> None:
    reasons = [f"{name}: not part of the TypeScript key layout" for name in sorted(found.unknown)]
    reasons += sorted(found.problems)
    if reasons:
        shown = "; ".join(reasons[:_MAX_PROBLEMS])
        more = f" (and {len(reasons) - _MAX_PROBLEMS} more)" if len(reasons) > _MAX_PROBLEMS else ""
        raise AdoptError(f'cannot adopt "{keys.prefix}", nothing was changed: {shown}{more}')


async def adopt(
    redis: Any, keys: Keys, projector: Projector, *, progress: Callable[[ReplayProgress], None] | None = None
) -> AdoptReport:
    """Take over a TypeScript `IoredisState` prefix (projection keys, no history). See the module doc."""
    started = time.perf_counter()

    def report_progress(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(ReplayProgress(phase, done, max(total, done), time.perf_counter() - started))

    async with prefix_lock(redis, keys):
        history = int(await redis.xlen(keys.events))
        if history:
            raise AdoptError(
                f'"{keys.prefix}" already has history ({history} events): adoption is only for a prefix '
                "written by the TypeScript IoredisState. Use `rebuild` or `verify` instead."
            )
        if keys.prefix.startswith("{"):
            plain = keys.prefix[1:-1]
            async for name in redis.scan_iter(match=plain + ":*", count=1000):
                raise AdoptError(
                    f'keys such as "{text(name)}" have no hash tag, but in cluster mode the prefix is '
                    f'"{keys.prefix}": the TypeScript layout cannot be adopted in place in cluster mode '
                    "(adopt without --cluster on a single Redis, then export and import into the cluster)"
                )
        found = _Found()
        scanned = 0

        def tick(n: int) -> None:
            nonlocal scanned
            scanned += n
            report_progress("scan", scanned, scanned)

        await _scan(redis, keys, found, tick)
        _refuse(found, keys)

        report = AdoptReport()
        lookups: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]] = {}
        for kind, key_prefix in _LOOKUPS.items():
            owned, implied, dropped = _owned(found.lookups[kind], found.claims[kind], f"{keys.prefix}:{key_prefix}")
            lookups[kind] = (owned, implied)
            report.dropped += dropped
        known = set(projector.ledger_ids)
        for applied in sorted(text(m) for m in await redis.smembers(keys.meta_migrations)):
            if applied not in known:
                report.warnings.append(
                    f'{keys.meta_migrations} lists "{applied}", a step hitl-streams does not know '
                    "(written by a newer TypeScript SDK?)"
                )

        # A batch goes before its items even when an item's clock ran ahead of the batch's.
        def sort_key(item: tuple[tuple[int, int, str], str, int]) -> tuple[int, int, str]:
            (ms, rank, subject), _, _ = item
            if rank == _RECORD_KINDS["batch"]:
                ms = min(ms, found.batch_first_item.get(subject, ms))
            return ms, rank, subject

        found.records.sort(key=sort_key)
        staging = keys.scratch("adopt-" + uuid.uuid4().hex[:12])
        try:
            at = now_iso()
            total = len(found.records)
            for start in range(0, total, _CHUNK):
                chunk = found.records[start : start + _CHUNK]
                values = await _read_strings(redis, [name for _, name, _ in chunk])
                pipe = redis.pipeline(transaction=False)
                for (order, name, crc), raw in zip(chunk, values, strict=True):
                    data = raw.encode() if isinstance(raw, str) else raw
                    if raw is None or zlib.crc32(data) != crc:
                        raise AdoptError(
                            f"{name} changed while adopting; stop the TypeScript writers and run adopt again "
                            "(nothing was changed)"
                        )
                    category = next(c for c, r in _RECORD_KINDS.items() if r == order[1])
                    record = _DECODERS[category](raw)
                    pipe.xadd(staging.events, {"event": ev.encode_event(_event(record, at, lookups))})
                    match record:
                        case HumanRequestRecord():
                            report.requests += 1
                        case BatchRecord():
                            report.batches += 1
                        case NotifyDeliveryRecord():
                            report.notify_deliveries += 1
                        case _:
                            report.timeline_entries += 1
                await pipe.execute()
                report_progress("import", start + len(chunk), total)

            stats = await replay_into(redis, staging, staging, projector, progress=progress)
            report.events, report.last_position = stats.events, stats.last_position
            drift = DriftReport()
            await _compare(redis, keys, staging, drift)
            audit = (keys.prefix + ":audit:", keys.prefix + ":audits:")
            records = tuple(f"{keys.prefix}:{p}" for p in _KEY_PREFIX.values())
            report.added = [k for k in drift.missing if not k.startswith(audit)]
            report.dropped = sorted(set(report.dropped) | set(drift.extra))
            report.rewritten = [k for k in drift.differing if k.startswith(records)]
            report.repaired = [k for k in drift.differing if not k.startswith(records)]

            report_progress("swap", 0, 1)
            await swap_in(redis, keys, staging)
            if stats.last_position is not None:
                await redis.rename(staging.events, keys.events)  # history exists from here on
                await redis.hset(
                    keys.meta_projection,
                    mapping={"position": stats.last_position, "events": stats.events, "adoptedAt": at},
                )
            await redis.sadd(keys.meta_migrations, *projector.ledger_ids)
            report_progress("swap", 1, 1)
        finally:
            await _delete_prefix(redis, staging)
    report.seconds = time.perf_counter() - started
    return report
