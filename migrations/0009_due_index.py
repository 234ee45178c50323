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
_SCHEDULE_EVENTS = (ev.ScheduleSet, ev.ScheduleFired, ev.ScheduleEnded)
"""A tuple, not `A | B | C`: that builds a new union on every event, most of this step's cost for the rest."""


def project(change: Change, ops: Ops) -> None:
    event, keys = change.event, change.keys
    if not isinstance(event, _SCHEDULE_EVENTS):
        return
    if isinstance(event, ev.ScheduleSet):
        ops.set(keys.schedule(event.id), _encode(event.spec()))
    following = event.following()
    ops.set(keys.schedule_next(event.id), _encode(following))
    if "at" in following:
        ops.zadd(keys.idx_due, iso_to_ms(following["at"]), event.id)
    else:
        ops.zrem(keys.idx_due, event.id)


STEP = Step(id="0009_due_index", description=__doc__ or "", project=project, events=_SCHEDULE_EVENTS)
