"""`server_side=True` and `request_human(timeout=...)`: the server keeps the timeout and reminders, the
workflow only waits (or walks away). In process, on InMemoryState and on StreamState (real Redis)."""

from __future__ import annotations

import asyncio

import pytest

from hitl_streams import Hitl, InMemoryState, State, StreamState, TimedOut, ValidationError, actions
from hitl_streams.client import remind
from hitl_streams.history import events as ev
from hitl_streams.testing import RecordingAdapter

ACTIONS = actions().approve().deny().build()


@pytest.fixture(params=["memory", "redis-streams"])
def state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return InMemoryState()
    return StreamState(request.getfixturevalue("redis"), table_name=request.getfixturevalue("table_name"))


def _fires(audit: list[ev.AuditRecord]) -> list[tuple[int, str]]:
    return [(r.event.fire, r.event.outcome) for r in audit if isinstance(r.event, ev.ScheduleFired)]


async def test_the_server_times_out_and_reminds_while_the_workflow_only_waits(state: State) -> None:
    chat = RecordingAdapter("chat")
    hitl = Hitl(state=state, adapters=[chat], secret="", deadline_poll_seconds=0.02)
    async with hitl:
        client = hitl.client()
        result = await asyncio.wait_for(
            client.wait_for_human(
                message="Deploy?",
                actions=ACTIONS,
                timeout="400ms",
                reminders=[remind.after("100ms", message="Nudge")],
                server_side=True,
            ),
            10,
        )
    assert isinstance(result, TimedOut)
    # The server's runner timed it out (a client-side timeout would have left it "already_resolved").
    assert _fires(await hitl.inbox.audit(result.id)) == [(0, "reminded"), (-1, "timed_out")]
    assert [n.message for n in chat.notifications] == ["Nudge"]


async def test_a_script_creates_with_a_timeout_and_walks_away(state: State) -> None:
    hitl = Hitl(state=state, secret="", deadline_poll_seconds=0.02)
    async with hitl:
        pending = await hitl.client().request_human(message="Walk away", actions=ACTIONS, timeout="150ms")

        async def timed_out() -> bool:
            record = await hitl.inbox.get(pending.id)
            return record is not None and isinstance(record.result, TimedOut)

        for _ in range(500):
            if await timed_out():
                break
            await asyncio.sleep(0.01)
        assert await timed_out()
        # A later wait on the saved Pending gets the server's verdict.
        assert isinstance(await asyncio.wait_for(hitl.client().wait_for_human(pending), 5), TimedOut)


async def test_server_side_needs_a_new_request() -> None:
    hitl = Hitl(secret="")
    pending = await hitl.client().request_human(message="x", actions=ACTIONS)
    with pytest.raises(ValidationError, match="server_side"):
        await hitl.client().wait_for_human(pending, timeout="1s", server_side=True)
