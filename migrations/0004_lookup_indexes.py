"""Lookups: resume token → request (`{P}:idx:token:{token}`), external ids → request, batch or delivery
(`{P}:idx:ext:*`, `{P}:idx:batch:ext:*`, `{P}:idx:notify:ext:*`), and batch items by index
(`{P}:idx:batch:{batchId}`, a ZSET scored by `batchIndex`). An imported event (adoption of a TypeScript
deployment) may name its lookup entries explicitly (`tokenIndex`, `extIndex`), so stale entries the
TypeScript state kept survive adoption unchanged."""

from msgspec import UnsetType

from hitl_streams.history import events as ev
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import BATCH_EVENTS, NOTIFY_EVENTS, Change
from hitl_streams.records import BatchRecord, HumanRequestRecord, NotifyDeliveryRecord


def _external_values(record: HumanRequestRecord | BatchRecord | None) -> list[str]:
    if record is None:
        return []
    values = [record.external_id] if record.external_id else []
    values.extend((record.external_ids or {}).values())
    return list(dict.fromkeys(values))


def project(change: Change, ops: Ops) -> None:
    after, before, keys, event = change.after, change.before, change.keys, change.event
    match after:
        case HumanRequestRecord():
            old = before if isinstance(before, HumanRequestRecord) else None
            imported = event if isinstance(event, ev.RequestImported) else None
            if old is None:
                tokens = [after.token]
                if imported is not None and not isinstance(imported.token_index, UnsetType):
                    tokens = imported.token_index
                for token in tokens:
                    ops.set(keys.idx_token(token), after.id.encode())
                if after.batch_id is not None and after.batch_index is not None:
                    ops.zadd(keys.idx_batch(after.batch_id), after.batch_index, after.id)
            if imported is not None and not isinstance(imported.ext_index, UnsetType):
                values, seen = imported.ext_index, []
            elif old is not None and after.external_id == old.external_id and after.external_ids == old.external_ids:
                return  # no new external id (a resolve): nothing to index
            else:
                values, seen = _external_values(after), _external_values(old)
            for value in values:
                if value not in seen:
                    ops.set(keys.idx_ext(value), after.id.encode())
        case BatchRecord():
            if isinstance(event, ev.BatchImported) and not isinstance(event.ext_index, UnsetType):
                values, seen = event.ext_index, []
            else:
                values = _external_values(after)
                seen = _external_values(before if isinstance(before, BatchRecord) else None)
            for value in values:
                if value not in seen:
                    ops.set(keys.idx_batch_ext(value), after.id.encode())
        case NotifyDeliveryRecord():
            if isinstance(event, ev.NotifyImported) and not isinstance(event.ext_index, UnsetType):
                for value in event.ext_index:
                    ops.set(keys.idx_notify_ext(value), after.id.encode())
                return
            previous = before.external_id if isinstance(before, NotifyDeliveryRecord) else None
            if after.external_id and after.external_id != previous:
                ops.set(keys.idx_notify_ext(after.external_id), after.id.encode())


# A resolution changes neither the token nor an external id (see `apply`): not one of its events.
_EVENTS = (ev.RequestCreated, ev.RequestImported, ev.RequestExternalIdSet, *BATCH_EVENTS, *NOTIFY_EVENTS)

STEP = Step(id="0004_lookup_indexes", description=__doc__ or "", project=project, events=_EVENTS)
