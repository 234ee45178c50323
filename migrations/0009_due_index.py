"""Server-side schedules: `{P}:schedule:{id}` (the schedule as set, JSON), `{P}:schedule:next:{id}` (what is
due next, JSON) and `{P}:idx:due`, a ZSET of the requests and batches with something due, scored by the epoch
milliseconds of their next due item. Each `schedule.*` event carries what is due after it, so this step
needs no read: the due index is a pure function of history, and a rebuild reproduces it."""

import msgspec

from hitl_streams._time import iso_to_ms
from hitl_streams.history import events as ev
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import Change

_encode = msgspec.json.Encoder().encode


def project(change: Change, ops: Ops) -> None:
    event, keys = change.event, change.keys
    if not isinstance(event, ev.ScheduleSet | ev.ScheduleFired | ev.ScheduleEnded):
        return
    if isinstance(event, ev.ScheduleSet):
        spec: dict[str, object] = {"subject": event.subject, "anchor": event.anchor, "reminders": event.reminders}
        if isinstance(event.timeout_at, str):
            spec["timeoutAt"] = event.timeout_at
        ops.set(keys.schedule(event.id), _encode(spec))
    if isinstance(event, ev.ScheduleEnded):
        ops.set(keys.schedule_next(event.id), _encode({"done": event.reason}))
        ops.zrem(keys.idx_due, event.id)
    elif isinstance(event.next_at, str) and isinstance(event.next_fire, int):
        ops.set(keys.schedule_next(event.id), _encode({"fire": event.next_fire, "at": event.next_at}))
        ops.zadd(keys.idx_due, iso_to_ms(event.next_at), event.id)
    else:
        ops.set(keys.schedule_next(event.id), _encode({"done": "fired"}))
        ops.zrem(keys.idx_due, event.id)


STEP = Step(id="0009_due_index", description=__doc__ or "", project=project)
