"""Hypothesis strategies for reminder entries, shared by the reminder and schedule tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from hitl_streams.reminders import ReminderEntry, escalate, remind

ZONES = [None, "UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia"]
skips = st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), max_size=6, unique=True)
clocks = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
messages = st.none() | st.text(max_size=20)


@st.composite
def entries(draw: st.DrawFn, *, bounded: bool = False) -> ReminderEntry:
    """Any entry a builder can make; `bounded` ones have a count or an until, and at most a few thousand fires."""
    kind = draw(st.sampled_from(["after", "at", "tomorrow_at", "every", "daily_at", "weekdays_at"]))
    builder: Any = remind if draw(st.booleans()) else escalate.to(draw(st.text(min_size=1, max_size=10)))
    message = draw(messages)
    if kind == "after":
        return builder.after(draw(st.floats(0.001, 1e7)), message=message)  # type: ignore[no-any-return]
    tz = draw(st.sampled_from(ZONES))
    if kind in ("at", "tomorrow_at"):
        return getattr(builder, kind)(draw(clocks), tz=tz, skip=draw(skips), message=message)  # type: ignore[no-any-return]
    count = draw(st.none() | st.integers(1, 40))
    until = draw(st.none() | st.floats(1, 1e8))
    if bounded and count is None and until is None:
        count = draw(st.integers(1, 40))
    at = draw(st.none() | clocks) if kind == "every" else None
    interval = (draw(st.integers(1, 14)) * 86_400 if at else draw(st.floats(1, 1e6))) if kind == "every" else 86_400
    if bounded and count is None and until is not None:
        # "Bounded" means a series a test can list: at most ~500 fires (an until of 1e8 s over a 1 s
        # interval is 1e8 fires, which a test that lists the whole series would hold in memory).
        until = min(until, 500 * interval)
    if kind == "every":
        return builder.every(  # type: ignore[no-any-return]
            interval, at=at, count=count, until=until, tz=tz, skip=draw(skips), message=message
        )
    return getattr(builder, kind)(draw(clocks), count=count, until=until, tz=tz, message=message)  # type: ignore[no-any-return]
