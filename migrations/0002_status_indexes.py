"""Status and all-requests ZSETs (`{P}:idx:status:{pending|resolved}`, `{P}:idx:all:req`), scored by the
epoch milliseconds of `createdAt`. Resolving moves a request from pending to resolved, keeping its score."""

from hitl_streams._time import iso_to_ms
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import REQUEST_EVENTS, Change
from hitl_streams.records import HumanRequestRecord


def project(change: Change, ops: Ops) -> None:
    after, before, keys = change.after, change.before, change.keys
    if not isinstance(after, HumanRequestRecord):
        return
    score = iso_to_ms(after.created_at)
    if before is None:
        ops.zadd(keys.idx_all, score, after.id)
        ops.zadd(keys.idx_status(after.status), score, after.id)
    elif isinstance(before, HumanRequestRecord) and before.status != after.status:
        ops.zrem(keys.idx_status(before.status), after.id)
        ops.zadd(keys.idx_status(after.status), score, after.id)


STEP = Step(
    id="0002_status_indexes",
    description=__doc__ or "",
    project=project,
    legacy_ids=("002-sorted-indexes",),
    events=REQUEST_EVENTS,
)
