"""A small but complete history for tests of the operator tools: requests created, delivered, re-delivered
with a new external id, reminded, escalated, resolved by a reviewer, timed out, resumed; a batch with items;
a thread with timeline entries and a notification."""

from __future__ import annotations

from hitl_streams import (
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    Resolved,
    Reviewer,
    StreamState,
    TimedOut,
    TimelineEntry,
    actions,
    field,
)
from hitl_streams._time import now_iso
from hitl_streams.history import events as ev


def request(
    rid: str, *, namespace: str = "global", batch: str | None = None, index: int | None = None
) -> NewHumanRequest:
    return NewHumanRequest(
        id=rid,
        token=f"tok-{rid}",
        channel="slack",
        namespace=namespace,
        message=f"Approve {rid}?",
        actions=actions().approve(fields={"note": field.text(label="Note")}).deny().build(),
        context={"tags": [], "n": 12345678901234567},
        batch_id=batch,
        batch_index=index,
    )


async def populate(state: StreamState, extra: int = 0) -> None:
    """The life of `r1` is complete: created, delivered, redelivered, reminded, escalated, resolved, resumed."""
    await state.create(request("r1"))
    await state.record(ev.RequestDelivered(at=now_iso(), id="r1", channel="slack", external_id="m1"))
    await state.set_external_id("r1", "m1")
    await state.set_external_id("r1", "m1b")  # redelivered: the primary external id changes
    await state.record(ev.RequestRedelivered(at=now_iso(), id="r1", channel="slack", external_id="m1b"))
    await state.record(ev.RequestReminded(at=now_iso(), id="r1", channel="slack", message="Still waiting"))
    await state.record(ev.RequestEscalated(at=now_iso(), id="r1", channel="email", mode="notify", message="Help"))
    await state.set_external_id("r1", "mail-1", "email")
    ann = Reviewer(id="u1", name="Ann")
    await state.resolve("r1", Resolved("r1", "approve", "m1b", {"note": "ok"}, by=ann, edited=True))
    await state.record(ev.ResumeAttempted(at=now_iso(), id="r1", attempt=1))
    await state.record(ev.ResumeFailed(at=now_iso(), id="r1", attempt=1, error="engine down", retry_in_ms=500))
    await state.record(ev.ResumeSucceeded(at=now_iso(), id="r1", attempt=2))

    await state.create(request("r2", namespace="ops"))
    await state.resolve("r2", TimedOut("r2", ""))
    await state.create(request("r3", namespace="ops"))

    await state.create_batch(NewBatch(id="b1", channel="slack", message="Review", actions=actions().approve().build()))
    await state.create(request("i0", batch="b1", index=0))
    await state.create(request("i1", batch="b1", index=1))
    await state.set_batch_external_id("b1", "bm1")
    await state.record(ev.BatchDelivered(at=now_iso(), id="b1", channel="slack", external_id="bm1"))

    await state.append_timeline(TimelineEntry(id="e1", thread_id="r1", message="created", created_at=now_iso()))
    await state.create_notify_delivery(NewNotifyDelivery(id="n1", channel="slack", message="FYI", group_id="r1"))
    await state.set_notify_delivery_external_id("n1", "nm1")
    await state.append_timeline(
        TimelineEntry(id="e2", thread_id="r1", message="FYI", detail={"items": []}, created_at=now_iso())
    )
    for i in range(extra):
        await state.create(request(f"x{i}", namespace="bulk"))
