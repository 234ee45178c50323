"""Each record under its own STRING key, as canonical JSON: requests, batches, timeline entries, notify
deliveries (`{P}:req:{id}`, `{P}:batch:{id}`, `{P}:timeline:entry:{id}`, `{P}:notify:{id}`)."""

from hitl_streams.history.codec import encode
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import RECORD_EVENTS, Change
from hitl_streams.records import BatchRecord, HumanRequestRecord, NotifyDeliveryRecord, TimelineEntry


def project(change: Change, ops: Ops) -> None:
    after, keys = change.after, change.keys
    if after is None or after == change.before:
        return
    match after:
        case HumanRequestRecord():
            ops.set(keys.req(after.id), encode(after))
        case BatchRecord():
            ops.set(keys.batch(after.id), encode(after))
        case TimelineEntry():
            ops.set(keys.timeline_entry(after.id), encode(after))
        case NotifyDeliveryRecord():
            ops.set(keys.notify(after.id), encode(after))


STEP = Step(
    id="0001_records",
    description=__doc__ or "",
    project=project,
    legacy_ids=("001-initial",),
    events=RECORD_EVENTS,
)
