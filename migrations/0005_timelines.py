"""Threads: `{P}:timeline:{threadId}`, a ZSET of entry ids scored by the entry's `createdAt` in ms."""

from hitl_streams._time import iso_to_ms
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import TIMELINE_EVENTS, Change
from hitl_streams.records import TimelineEntry


def project(change: Change, ops: Ops) -> None:
    after = change.after
    if isinstance(after, TimelineEntry) and change.before is None:
        ops.zadd(change.keys.timeline(after.thread_id), iso_to_ms(after.created_at), after.id)


STEP = Step(id="0005_timelines", description=__doc__ or "", project=project, events=TIMELINE_EVENTS)
