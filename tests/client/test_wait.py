"""The wait loop (REF §6.3 with its fixes) driven through `create_test_hitl`: decisions, timeouts, races,
reminders and escalations at their simulated times, the `pending:false` self-heal, batches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from hitl_streams import BatchDecision, Hitl, Resolved, Reviewer, TimedOut, actions, field
from hitl_streams.client import BatchItem, escalate, remind
from hitl_streams.testing import RecordingAdapter, TestHitl, create_test_hitl

T = TypeVar("T")

ACTIONS = (
    actions()
    .approve(fields={"subject": field.text(label="Subject", default="Hi")})
    .deny(fields={"reason": field.text(label="Reason")})
    .build()
)


@pytest.fixture
def chat() -> RecordingAdapter:
    return RecordingAdapter("chat")


@pytest.fixture
def ops() -> RecordingAdapter:
    return RecordingAdapter("ops")


@pytest.fixture
def t(chat: RecordingAdapter, ops: RecordingAdapter) -> TestHitl:
    return create_test_hitl(adapters=[chat, ops], secret="harness-secret")


async def first_request_id(t: TestHitl) -> str:
    """The id of the newest request, once the client has created one."""
    for _ in range(1000):
        page = await t.hitl.inbox.list()
        if page.items:
            return page.items[0].id
        await asyncio.sleep(0)
    raise AssertionError("no request was created")


def started(coro: Awaitable[T]) -> asyncio.Task[T]:
    return asyncio.ensure_future(coro)


def notes(adapter: RecordingAdapter) -> list[str]:
    return [call.args[0].message for call in adapter.calls if call.method == "notify"]


async def test_approve(t: TestHitl) -> None:
    waiting = started(t.client.wait_for_human(message="Deploy?", actions=ACTIONS, timeout="1h"))
    request_id = await first_request_id(t)
    await t.hitl.inbox.resolve(request_id, action_id="approve", by=Reviewer(id="ana"))
    result = await waiting
    assert result == Resolved(
        id=request_id,
        action_id="approve",
        external_ref=f"chat/{request_id}",
        feedbacks={"subject": "Hi"},
        by=Reviewer(id="ana"),
    )
    assert t.sleep_calls == [3600.0]
    assert t.pending_sleeps == 0  # the losing timer was cancelled, not left for a later flush


async def test_deny_with_feedback_fields(t: TestHitl) -> None:
    pending = await t.client.request_human(message="Deploy?", actions=ACTIONS)
    waiting = started(t.client.wait_for_human(pending))
    await t.hitl.inbox.resolve(pending.id, action_id="deny", feedbacks={"reason": "Friday"})
    result = await waiting
    assert isinstance(result, Resolved)
    assert (result.action_id, result.feedbacks, result.edited) == ("deny", {"reason": "Friday"}, True)
    assert t.sleep_calls == []  # no timeout, no reminders: no timer at all


async def test_timeout(t: TestHitl) -> None:
    waiting = started(t.client.wait_for_human(message="Deploy?", actions=ACTIONS, timeout="30m"))
    assert await t.flush_sleep() == 1800.0
    result = await waiting
    request_id = await first_request_id(t)
    assert result == TimedOut(id=request_id, external_ref=f"chat/{request_id}")
    record = await t.hitl.inbox.get(request_id)
    assert record is not None and record.status == "resolved" and record.result == result


async def test_a_human_decision_racing_the_timeout_wins(t: TestHitl) -> None:
    """Decided (by another replica, say) but not yet resumed when the timer fires: the timeout route
    returns the human's decision, which the client returns (not a TimedOut)."""
    waiting = started(t.client.wait_for_human(message="Deploy?", actions=ACTIONS, timeout="1h"))
    request_id = await first_request_id(t)
    replica = Hitl(state=t.hitl.state, adapters=t.hitl.adapters, secret="")
    decided = await replica.inbox.resolve(request_id, action_id="approve")
    assert not waiting.done()
    await t.flush_sleep()
    assert await waiting == decided
    record = await t.hitl.inbox.get(request_id)
    assert record is not None and record.result == decided


async def test_reminders_fire_in_order_at_their_times(t: TestHitl, chat: RecordingAdapter) -> None:
    waiting = started(
        t.client.wait_for_human(
            message="Deploy?",
            actions=ACTIONS,
            timeout="1h",
            reminders=[remind.every("20m", count=2, message="every 20m"), remind.after("10m", message="after 10m")],
        )
    )
    flushed = [await t.flush_sleep() for _ in range(4)]
    result = await waiting
    assert isinstance(result, TimedOut)
    # Fires at 10m, 20m, 40m, then the timeout at 60m: each sleep is the gap to the next wake.
    assert flushed == t.sleep_calls == [600.0, 600.0, 1200.0, 1200.0]
    assert notes(chat) == ["after 10m", "every 20m", "every 20m"]
    timeline = await t.hitl.inbox.timeline(result.id)
    assert [entry.message for entry in timeline] == ["after 10m", "every 20m", "every 20m"]


async def test_wall_clock_reminders_use_the_primitives_clock(t: TestHitl, chat: RecordingAdapter) -> None:
    # The harness clock starts on Monday 2026-01-05 at 09:00 UTC.
    waiting = started(
        t.client.wait_for_human(
            message="Deploy?", actions=ACTIONS, timeout="2h", reminders=[remind.at("09:30", message="half past")]
        )
    )
    await t.flush_sleep()
    await t.flush_sleep()
    assert isinstance(await waiting, TimedOut)
    assert t.sleep_calls == [1800.0, 5400.0]
    assert notes(chat) == ["half past"]


async def test_the_timeout_wins_a_tie_with_a_reminder(t: TestHitl, chat: RecordingAdapter) -> None:
    waiting = started(
        t.client.wait_for_human(message="x", actions=ACTIONS, timeout="1h", reminders=[remind.after("1h")])
    )
    await t.flush_sleep()
    assert isinstance(await waiting, TimedOut)
    assert t.sleep_calls == [3600.0]
    assert notes(chat) == []


async def test_escalations(t: TestHitl, chat: RecordingAdapter, ops: RecordingAdapter) -> None:
    waiting = started(
        t.client.wait_for_human(
            message="Deploy?",
            actions=ACTIONS,
            timeout="2h",
            reminders=[
                escalate.to("ops").after("30m", message="Ops, please look"),
                escalate.to("ops", mode="redeliver").after("1h"),
            ],
        )
    )
    await t.flush_sleep()
    request_id = await first_request_id(t)
    await t.flush_sleep()
    # Redelivered to ops: a reviewer there decides; the wait ends with that decision.
    for _ in range(1000):
        if any(call.method == "send" for call in ops.calls):
            break
        await asyncio.sleep(0)
    await t.hitl.inbox.resolve(request_id, action_id="approve")
    result = await waiting
    assert isinstance(result, Resolved) and result.action_id == "approve"
    assert notes(ops) == ["Ops, please look"]
    assert [call.method for call in ops.calls if call.method in ("send", "notify")] == ["notify", "send"]
    assert t.sleep_calls == [1800.0, 1800.0, 3600.0]
    assert notes(chat) == []


async def test_pending_false_self_heals_without_waiting_for_the_timeout(t: TestHitl) -> None:
    """REF §10.2 #8: decided, but the resume never arrived. The next reminder learns `pending: false`
    and the client fetches the stored result instead of waiting (here: forever, there is no timeout)."""
    waiting = started(t.client.wait_for_human(message="Deploy?", actions=ACTIONS, reminders=[remind.every("1h")]))
    request_id = await first_request_id(t)
    replica = Hitl(state=t.hitl.state, adapters=t.hitl.adapters, secret="")
    decided = await replica.inbox.resolve(request_id, action_id="deny", feedbacks={"reason": "no"})
    await t.flush_sleep()
    assert await asyncio.wait_for(waiting, 5) == decided
    assert t.sleep_calls == [3600.0]
    record = await t.hitl.inbox.get(request_id)
    assert record is not None and record.result == decided  # the timeout route did not overwrite it


async def test_batch_results_in_item_order(t: TestHitl) -> None:
    pending = await t.client.request_human(
        message="Three deploys",
        actions=ACTIONS,
        items=[BatchItem(message="api"), BatchItem(message="web"), BatchItem(message="db")],
    )
    waiting = started(t.client.wait_for_human(pending, timeout="1d"))
    ids = list(pending.ids)
    await t.hitl.inbox.resolve_batch(
        pending.id,
        [
            BatchDecision(request_id=ids[2], action_id="deny", feedbacks={"reason": "db freeze"}),
            BatchDecision(request_id=ids[0], action_id="approve"),
            BatchDecision(request_id=ids[1], action_id="approve", feedbacks={"subject": "Web!"}),
        ],
    )
    results = await waiting
    assert [r.id for r in results] == ids
    assert [(r.action_id, r.feedbacks) for r in results if isinstance(r, Resolved)] == [
        ("approve", {"subject": "Hi"}),
        ("approve", {"subject": "Web!"}),
        ("deny", {"reason": "db freeze"}),
    ]


async def test_batch_timeout_keeps_decided_items(t: TestHitl) -> None:
    waiting = started(
        t.client.wait_for_human(
            message="Two", actions=ACTIONS, items=[{"message": "a"}, {"message": "b"}], timeout="1h"
        )
    )
    request_id = await first_request_id(t)
    record = await t.hitl.inbox.get(request_id)
    assert record is not None and record.batch_id is not None
    view = await t.hitl.inbox.get_batch(record.batch_id)
    assert view is not None
    second = view.items[1].id
    decided = await t.hitl.inbox.resolve(second, action_id="approve")
    await t.flush_sleep()
    results = await waiting
    assert [type(r) for r in results] == [TimedOut, Resolved]
    assert results[0].id == view.items[0].id and results[1] == decided


async def test_each_harness_has_its_own_state() -> None:
    one, two = create_test_hitl(), create_test_hitl()
    await one.client.request_human(message="only in one", actions=ACTIONS)
    assert await one.hitl.inbox.count() == 1
    assert await two.hitl.inbox.count() == 0


async def test_flush_sleep_says_when_nothing_sleeps() -> None:
    t = create_test_hitl()
    with pytest.raises(Exception, match="nothing was sleeping"):
        await t.flush_sleep(within=0.05)


async def test_a_pending_from_another_client_is_waited_on(t: TestHitl) -> None:
    import msgspec

    from hitl_streams.client import Pending

    pending = await t.client.request_human(message="x", actions=ACTIONS)
    decided = await t.hitl.inbox.resolve(pending.id, action_id="approve")
    other = create_test_hitl(state=t.hitl.state)  # a second harness on the same state: another "process"
    reloaded = msgspec.json.decode(msgspec.json.encode(pending), type=Pending)
    assert await asyncio.wait_for(other.client.wait_for_human(reloaded, timeout="1h"), 5) == decided
    assert other.pending_sleeps == 0  # its timer lost the race and was cancelled


async def test_a_reminder_a_channel_failed_to_send_does_not_end_the_wait(t: TestHitl, ops: RecordingAdapter) -> None:
    ops.fail("notify")
    waiting = started(
        t.client.wait_for_human(message="x", actions=ACTIONS, timeout="1h", reminders=[escalate.to("ops").after("10m")])
    )
    await t.flush_sleep()
    await t.flush_sleep()
    assert isinstance(await waiting, TimedOut)
    assert t.sleep_calls == [600.0, 3000.0]


async def test_an_escalation_to_an_unknown_channel_is_raised(t: TestHitl) -> None:
    from hitl_streams.client import HitlHttpError

    waiting = started(
        t.client.wait_for_human(message="x", actions=ACTIONS, reminders=[escalate.to("nowhere").after("10m")])
    )
    await t.flush_sleep()
    with pytest.raises(HitlHttpError) as caught:
        await waiting
    assert caught.value.status == 400 and "nowhere" in caught.value.body
