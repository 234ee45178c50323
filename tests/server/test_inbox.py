"""`hitl.inbox`: reading, deciding (REF §5.7, §5.8 with the SPEC §6 rules), timelines and audit trails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_streams import (
    AlreadyResolvedError,
    FeedbackValidationError,
    Resolved,
    Reviewer,
    TimedOut,
    UnknownActionError,
    UnknownBatchError,
    UnknownRequestError,
    ValidationError,
)
from hitl_streams.server import BatchDecision, Hitl
from hitl_streams.server.wire import parse_create_request
from hitl_streams.testing.recording import RecordingAdapter

ACTIONS: list[dict[str, Any]] = [
    {
        "id": "approve",
        "fields": {
            "subject": {"kind": "text", "label": "Subject", "default": "Hi"},
            "tone": {"kind": "select", "label": "Tone", "options": ["warm", "dry"], "default": "warm"},
            "cc": {"kind": "confirm", "label": "CC me", "default": False},
        },
    },
    {"id": "deny", "fields": {"reason": {"kind": "textarea", "label": "Reason"}}},
    {"id": "later"},
]


async def create(hitl: Hitl, token: str = "t-1", **extra: Any) -> str:
    body = parse_create_request({"token": token, "message": "Send?", "actions": ACTIONS, **extra})
    return (await hitl.core.create_request(body)).id


async def test_approve_with_the_defaults_is_not_edited(hitl: Hitl, chat: RecordingAdapter) -> None:
    request_id = await create(hitl)
    result = await hitl.inbox.resolve(request_id, action_id="approve")
    assert result == Resolved(
        id=request_id,
        action_id="approve",
        external_ref=f"chat/{request_id}",
        feedbacks={"subject": "Hi", "tone": "warm", "cc": False},
    )
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.status == "resolved" and record.result == result
    assert chat.updates == [(f"chat/{request_id}", result)]


async def test_changed_values_are_edited_and_coerced(hitl: Hitl) -> None:
    request_id = await create(hitl)
    by = Reviewer(id="u1", name="Ada")
    result = await hitl.inbox.resolve(
        request_id, action_id="approve", feedbacks={"subject": "Hello", "cc": "true"}, by=by
    )
    assert isinstance(result, Resolved)
    assert (result.feedbacks, result.edited, result.by) == ({"subject": "Hello", "tone": "warm", "cc": True}, True, by)


async def test_a_field_without_default_always_counts_as_edited(hitl: Hitl) -> None:
    request_id = await create(hitl)
    result = await hitl.inbox.resolve(request_id, action_id="deny", feedbacks={"reason": "Nope"})
    assert isinstance(result, Resolved) and result.edited and result.feedbacks == {"reason": "Nope"}


@pytest.mark.parametrize(
    ("action_id", "feedbacks", "error", "message"),
    [
        ("ship", None, UnknownActionError, 'Unknown action "ship".'),
        ("approve", {"bogus": 1}, FeedbackValidationError, 'Unknown feedback key: "bogus"'),
        ("approve", {"subject": 3}, FeedbackValidationError, 'Feedback "subject" must be a string'),
        ("approve", {"tone": "loud"}, FeedbackValidationError, 'Feedback "tone" must be one of: warm, dry'),
        ("approve", {"cc": "yes"}, FeedbackValidationError, 'Feedback "cc" must be a boolean'),
        ("approve", [1], FeedbackValidationError, "Feedbacks must be an object"),
        ("deny", {}, FeedbackValidationError, 'Missing value for feedback "reason"'),
        # Feedbacks for an action without fields are refused instead of dropped (REF §10.6 item 36).
        ("later", {"note": "x"}, FeedbackValidationError, 'Unknown feedback key: "note"'),
    ],
)
async def test_invalid_decisions_raise_typed_errors_and_leave_the_request_pending(
    hitl: Hitl, action_id: str, feedbacks: Any, error: type[Exception], message: str
) -> None:
    request_id = await create(hitl)
    with pytest.raises(error) as raised:
        await hitl.inbox.resolve(request_id, action_id=action_id, feedbacks=feedbacks)
    assert str(raised.value) == message
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.status == "pending"


async def test_unknown_ids_raise_not_found(hitl: Hitl) -> None:
    with pytest.raises(UnknownRequestError, match='Unknown human request "nope"'):
        await hitl.inbox.resolve("nope", action_id="approve")
    with pytest.raises(UnknownBatchError, match='Unknown batch "nope"'):
        await hitl.inbox.resolve_batch("nope", [BatchDecision(request_id="x", action_id="approve")])
    assert await hitl.inbox.get("nope") is None
    assert await hitl.inbox.get_batch("nope") is None


async def test_the_same_decision_again_returns_the_stored_result(hitl: Hitl, resumed: Any) -> None:
    request_id = await create(hitl)
    first = await hitl.inbox.resolve(request_id, action_id="approve", by=Reviewer(name="A"))
    again = await hitl.inbox.resolve(
        request_id, action_id="approve", feedbacks={"subject": "Hi"}, by=Reviewer(name="B")
    )
    assert again == first  # the stored result, first reviewer included
    await resumed.wait_for(1)
    await asyncio.sleep(0.02)
    assert len(resumed.calls) == 1  # resumed once


@pytest.mark.parametrize(
    ("action_id", "feedbacks"),
    [("deny", {"reason": "x"}), ("approve", {"subject": "Other"}), ("ship", None), ("approve", {"bad": 1})],
)
async def test_a_different_decision_on_a_resolved_request_is_already_resolved(
    hitl: Hitl, action_id: str, feedbacks: Any
) -> None:
    request_id = await create(hitl)
    await hitl.inbox.resolve(request_id, action_id="approve")
    with pytest.raises(AlreadyResolvedError, match=f'Human request "{request_id}" is already resolved'):
        await hitl.inbox.resolve(request_id, action_id=action_id, feedbacks=feedbacks)


async def test_a_decision_after_a_timeout_is_already_resolved(hitl: Hitl) -> None:
    request_id = await create(hitl)
    assert isinstance(await hitl.core.timeout(request_id), TimedOut)
    with pytest.raises(AlreadyResolvedError):
        await hitl.inbox.resolve(request_id, action_id="approve")


async def test_concurrent_decisions_one_wins(hitl: Hitl, resumed: Any) -> None:
    request_id = await create(hitl)
    outcomes = await asyncio.gather(
        *(hitl.inbox.resolve(request_id, action_id="deny", feedbacks={"reason": str(n)}) for n in range(8)),
        hitl.core.timeout(request_id),
        return_exceptions=True,
    )
    winners = [o for o in outcomes[:8] if isinstance(o, Resolved)]
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.result is not None
    assert all(isinstance(o, AlreadyResolvedError) for o in outcomes[:8] if not isinstance(o, Resolved))
    assert len(winners) <= 1 and all(w == record.result for w in winners)
    assert outcomes[8] == record.result  # the timeout reports the winner
    trail = [r.event for r in await hitl.inbox.audit(request_id)]
    assert sum(type(e).__name__ in ("RequestResolved", "RequestTimedOut") for e in trail) == 1
    await resumed.wait_for(1)


async def test_list_count_and_namespaces(hitl: Hitl) -> None:
    ids = [await create(hitl, f"t{n}", namespace="team-a" if n % 2 else "team-b") for n in range(5)]
    await hitl.inbox.resolve(ids[0], action_id="later")
    assert await hitl.inbox.count() == 5
    assert await hitl.inbox.count(status="pending") == 4
    assert await hitl.inbox.count(namespace="team-a") == 2
    page = await hitl.inbox.list(limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None
    rest = await hitl.inbox.list(limit=10, cursor=page.next_cursor)
    assert {r.id for r in page.items + rest.items} == set(ids)
    assert {r.id for r in (await hitl.inbox.list(status="resolved")).items} == {ids[0]}


async def test_the_audit_trail_tells_the_whole_story(hitl: Hitl, resumed: Any) -> None:
    request_id = await create(hitl)
    await hitl.core.remind(request_id, parse_remind({"kind": "remind"}))
    await hitl.core.remind(request_id, parse_remind({"kind": "escalate", "channel": "inbox", "message": "Boss?"}))
    await hitl.core.remind(request_id, parse_remind({"kind": "escalate", "channel": "inbox", "mode": "redeliver"}))
    await hitl.inbox.resolve(request_id, action_id="approve", by=Reviewer(id="u7"))
    await resumed.wait_for(1)
    await asyncio.sleep(0.02)
    trail = [r.event for r in await hitl.inbox.audit(request_id)]
    assert [e.__class__.__name__ for e in trail] == [
        "RequestCreated",
        "RequestExternalIdSet",
        "RequestDelivered",
        "NotifyCreated",
        "TimelineAppended",
        "RequestReminded",
        "NotifyCreated",
        "TimelineAppended",
        "RequestEscalated",
        "RequestEscalated",
        "RequestExternalIdSet",
        "RequestRedelivered",
        "RequestResolved",
        "ResumeAttempted",
        "ResumeSucceeded",
    ]
    delivered = trail[2]
    assert (delivered.channel, delivered.external_id) == ("chat", f"chat/{request_id}")  # type: ignore[union-attr]
    resolved = trail[12]
    assert resolved.actor == Reviewer(id="u7")
    positions = [r.position for r in await hitl.inbox.audit(request_id)]
    assert positions == sorted(positions, key=lambda p: int(p.split("-")[0]))


def parse_remind(body: dict[str, Any]) -> Any:
    from hitl_streams.server.wire import parse_remind as parse

    return parse(body)


async def test_the_inbox_pages_timelines_and_audit_trails(hitl: Hitl) -> None:
    request_id = await create(hitl)
    for n in range(4):
        await hitl.core.remind(request_id, parse_remind({"kind": "remind", "message": f"nudge {n}"}))
    trail = await hitl.inbox.audit(request_id)
    timeline = await hitl.inbox.timeline(request_id)
    assert len(timeline) == 4 and len(trail) > 6
    first = await hitl.inbox.audit(request_id, limit=4)
    rest = await hitl.inbox.audit(request_id, limit=100, cursor=first[-1].position)
    assert first + rest == trail and len(first) == 4
    page = await hitl.inbox.timeline(request_id, limit=3)
    assert page + await hitl.inbox.timeline(request_id, limit=3, cursor=page[-1].id) == timeline


async def test_by_as_a_typescript_shaped_mapping_is_a_reviewer(hitl: Hitl) -> None:
    request_id = await create(hitl)
    with pytest.raises(ValidationError, match="by must be"):
        await hitl.inbox.resolve(request_id, action_id="later", by={"name": 5})
    with pytest.raises(ValidationError, match="by must be"):
        await hitl.inbox.resolve(request_id, action_id="later", by="Ada")  # type: ignore[arg-type]
    result = await hitl.inbox.resolve(request_id, action_id="later", by={"id": "u1", "name": "Ada"})
    assert isinstance(result, Resolved) and result.by == Reviewer(id="u1", name="Ada")
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.result == result
