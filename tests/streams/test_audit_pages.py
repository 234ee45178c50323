"""`StreamState.audit` pages: a request's field, a thread's LIST, and an id that is both, read page by page
with the last position as cursor, give exactly the whole trail, oldest first."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from hitl_streams import NewHumanRequest, StreamState, TimelineEntry, actions
from hitl_streams._time import now_iso
from hitl_streams.history import events as ev

pytestmark = pytest.mark.redis


async def _paged(state: StreamState, subject: str, size: int) -> list[ev.AuditRecord]:
    out: list[ev.AuditRecord] = []
    cursor: str | None = None
    while page := await state.audit(subject, limit=size, cursor=cursor):
        assert len(page) <= size
        out += page
        cursor = page[-1].position
    return out


@pytest.mark.parametrize("size", [1, 2, 5, 100])
async def test_pages_of_a_request_a_thread_and_an_id_that_is_both(redis: Redis, table_name: str, size: int) -> None:
    state = StreamState(redis, table_name=table_name)
    request = NewHumanRequest(id="r1", token="t1", channel="chat", message="m", actions=actions().approve().build())
    await state.create(request)
    for n in range(4):
        # r1 is also a thread: its entries go to the LIST, the request's own events to its field.
        entry = TimelineEntry(id=f"e{n}", thread_id="r1", message=f"m{n}", created_at=now_iso())
        await state.append_timeline(entry)
        await state.set_external_id("r1", f"ext-{n}")
        await state.append_timeline(TimelineEntry(id=f"o{n}", thread_id="other", message="x", created_at=now_iso()))
    for subject in ("r1", "other"):
        whole = await state.audit(subject)
        assert len(whole) == (9 if subject == "r1" else 4)  # created, 4 external ids, 4 entries
        assert await _paged(state, subject, size) == whole
    assert await state.audit("nobody", limit=3) == []
