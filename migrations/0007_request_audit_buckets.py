"""Requests' audit index moves to `{P}:audits:{bucket}`: one HASH field per request, the stream ids of its
events space separated, in 1024 buckets by CRC-32 of its id. A LIST per request (step 0006) cost ~260 bytes
of Redis memory per request, a field ~60. Batches, notify deliveries and threads keep their LISTs: they can
hold many events, and appending to a long field would copy it each time."""

from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import Change


def project(change: Change, ops: Ops) -> None:
    event = change.event
    subjects = event.subjects() if event.about_request else ()
    if not subjects:
        return
    request_id, *others = subjects
    keys = change.keys
    if request_id not in others:  # a batch with the request's own id keeps its LIST
        ops.drop("P", keys.audit(request_id))
    ops.push_position_to_field(keys.audit_bucket(request_id), request_id)


STEP = Step(id="0007_request_audit_buckets", description=__doc__ or "", project=project)
