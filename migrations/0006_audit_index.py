"""Audit index: `{P}:audit:{subjectId}`, a LIST of the stream ids of every event about one request, batch,
notify delivery or thread, so a subject's history reads in O(its own events)."""

from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import Change


def project(change: Change, ops: Ops) -> None:
    for subject in dict.fromkeys(change.event.subjects()):
        ops.push_position(change.keys.audit(subject))


STEP = Step(id="0006_audit_index", description=__doc__ or "", project=project)
