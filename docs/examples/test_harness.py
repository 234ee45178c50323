"""Testing your workflow code with create_test_hitl(): no engine, no network, timers fired by hand."""

import asyncio

from hitl_streams import HumanResult, TimedOut, actions
from hitl_streams.client import HitlClient, escalate, remind
from hitl_streams.testing import RecordingAdapter, create_test_hitl


async def ask_for_budget(client: HitlClient) -> HumanResult:
    """The code under test: it would get an engine's client in production."""
    return await client.wait_for_human(
        message="Approve a budget of 4,000 EUR?",
        actions=actions().approve().deny().build(),
        timeout="2d",
        reminders=[remind.every("1d"), escalate.to("managers").after("36h")],
    )


async def main() -> None:
    managers = RecordingAdapter("managers")
    t = create_test_hitl(adapters=[RecordingAdapter("team"), managers])
    waiting = asyncio.create_task(ask_for_budget(t.client))
    await t.flush_sleep()  # day 1: a reminder
    await t.flush_sleep()  # 36 h: escalated to the managers' channel
    await t.flush_sleep()  # 2 days: the timeout
    result = await waiting
    assert isinstance(result, TimedOut)
    assert t.sleep_calls == [86400.0, 43200.0, 43200.0]
    assert [call.method for call in managers.calls] == ["notify"]
    print("timed out after", sum(t.sleep_calls) / 3600, "hours")


asyncio.run(main())
