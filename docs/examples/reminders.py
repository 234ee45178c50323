"""Reminders and escalations: build them once, pass them to a wait, and see when they will fire."""

from datetime import datetime
from zoneinfo import ZoneInfo

from hitl_streams import escalate, remind
from hitl_streams.schedule import expand_schedule

berlin = ZoneInfo("Europe/Berlin")
reminders = [
    remind.after("4h"),
    remind.weekdays_at("09:00", tz="Europe/Berlin", message="The deploy is still waiting for you"),
    escalate.to("managers").after("1d"),
    escalate.to("on-call", mode="redeliver").every("2d", at="08:00", tz="Europe/Berlin", count=2),
]
# In a workflow: await client.wait_for_human(message=..., actions=..., timeout="3d", reminders=reminders)

# When they fire for a wait that starts on Friday at 17:00 in Berlin, with a 3-day timeout:
start = datetime(2026, 11, 27, 17, 0, tzinfo=berlin)
for fire in expand_schedule(reminders, start, timeout=3 * 86_400):
    when = fire.when(start).astimezone(berlin).strftime("%a %H:%M")
    body = fire.entry.remind_body()
    print(when, body["kind"], body.get("channel", "-"), body["message"])
