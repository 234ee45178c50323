"""Property: for any reminders and timeout, the wait loop sleeps exactly up to each scheduled fire and then
to the timeout, POSTs one `/remind` per fire (in schedule order) and one `/timeout`."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_streams import Hitl, actions
from hitl_streams.client import create_hitl_client, escalate, remind
from hitl_streams.reminders import ReminderEntry
from hitl_streams.schedule import expand_schedule
from hitl_streams.testing import RecordingAdapter

from .support import WirePrimitives

ANCHOR = datetime(2026, 3, 27, 22, 0, tzinfo=UTC)  # a Friday night, two days before a European DST change

minutes = st.integers(min_value=1, max_value=600)
entries = st.one_of(
    minutes.map(lambda m: remind.after(m * 60, message=f"after {m}")),
    st.tuples(minutes, st.integers(1, 5)).map(lambda p: remind.every(p[0] * 60, count=p[1], message="every")),
    st.sampled_from(["07:00", "09:30", "23:59"]).map(
        lambda clock: remind.weekdays_at(clock, tz="Europe/Berlin", count=3, message=f"weekdays {clock}")
    ),
    minutes.map(lambda m: escalate.to("ops").after(m * 60)),
)


class Clocked(WirePrimitives):
    def now(self) -> datetime:
        return ANCHOR


@settings(max_examples=40, deadline=None)
@given(reminders=st.lists(entries, max_size=4), timeout_minutes=st.integers(min_value=1, max_value=5 * 24 * 60))
def test_sleeps_and_posts_follow_the_schedule(reminders: list[ReminderEntry], timeout_minutes: int) -> None:
    timeout = timeout_minutes * 60.0
    fires = list(itertools.islice(expand_schedule(reminders, ANCHOR, timeout), 1000))

    async def run() -> Clocked:
        wire = Clocked(Hitl(adapters=[RecordingAdapter("chat"), RecordingAdapter("ops")], secret=""))
        client = create_hitl_client(wire, url="http://h", secret="")
        pending = await client.request_human(message="y", actions=actions().approve().build())
        await client.wait_for_human(pending, timeout=timeout, reminders=reminders)
        return wire

    wire = asyncio.run(run())
    wakes = [*sorted({fire.at for fire in fires}), timeout]
    expected_sleeps = [b - a for a, b in itertools.pairwise([0.0, *wakes])]
    assert [round(s, 6) for s in wire.sleeps] == [round(s, 6) for s in expected_sleeps if s > 0]
    assert wire.bodies("/remind") == [fire.entry.remind_body() for fire in fires]
    assert [r.url.rsplit("/", 1)[-1] for r in wire.requests].count("timeout") == 1
    assert all(fire.at < timeout for fire in fires)
