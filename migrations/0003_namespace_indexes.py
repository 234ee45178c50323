"""Namespace ZSETs (`{P}:idx:ns:{ns}` and `{P}:idx:ns:{ns}:status:{pending|resolved}`), scored like the
status indexes. Resolving moves a request between the namespace's status sets."""

from hitl_streams._time import iso_to_ms
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import REQUEST_EVENTS, Change
from hitl_streams.records import HumanRequestRecord


def project(change: Change, ops: Ops) -> None:
    after, before, keys = change.after, change.before, change.keys
    if not isinstance(after, HumanRequestRecord):
        return
    score = iso_to_ms(after.created_at)
    ns = after.namespace
    if before is None:
        ops.zadd(keys.idx_ns(ns), score, after.id)
        ops.zadd(keys.idx_ns_status(ns, after.status), score, after.id)
    elif isinstance(before, HumanRequestRecord) and before.status != after.status:
        ops.zrem(keys.idx_ns_status(ns, before.status), after.id)
        ops.zadd(keys.idx_ns_status(ns, after.status), score, after.id)


STEP = Step(
    id="0003_namespace_indexes",
    description=__doc__ or "",
    project=project,
    legacy_ids=("003-namespace-indexes",),
    events=REQUEST_EVENTS,
)
