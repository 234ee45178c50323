"""A create takes the delivery lease before its record exists (so it skips the read after it), and gives
it back when the create fails: a retry delivers at once instead of waiting for the lease to lapse."""

from __future__ import annotations

import httpx

from hitl_streams import InMemoryState, NewHumanRequest
from hitl_streams.errors import StateUnavailableError
from hitl_streams.server import Hitl
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY


class WatchingState(InMemoryState):
    """Records, at each create, which delivery leases are held; the first `failures` creates raise."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.held_at_create: list[list[str]] = []

    async def create(self, record: NewHumanRequest) -> None:
        self.held_at_create.append(list(self._leases))
        if self.failures:
            self.failures -= 1
            raise StateUnavailableError("the state is down")
        await super().create(record)


async def _post(hitl: Hitl, token: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
        body = {"token": token, "message": "Deploy?", "actions": APPROVE_DENY}
        return await http.post(f"{API}/requests", json=body)


async def test_the_lease_is_held_while_the_record_is_created_and_given_back_after_delivery() -> None:
    state, chat = WatchingState(), RecordingAdapter("chat")
    hitl = Hitl(state=state, adapters=[chat], secret="")
    created = await _post(hitl, "t1")
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert state.held_at_create == [[f"deliver:{request_id}"]]
    assert len(chat.sent) == 1 and state._leases == {}  # delivered once, lease released
    again = await _post(hitl, "t1")  # a retry: the same answer, no second delivery
    assert again.json() == created.json() and len(chat.sent) == 1


async def test_a_failed_create_gives_the_lease_back_and_the_retry_delivers_at_once() -> None:
    state, chat = WatchingState(failures=1), RecordingAdapter("chat")
    hitl = Hitl(state=state, adapters=[chat], secret="")
    failed = await _post(hitl, "t1")
    assert failed.status_code == 503
    assert state._leases == {}  # not left to lapse: a retry would have waited 30 s for it
    retried = await _post(hitl, "t1")
    assert retried.status_code == 201 and len(chat.sent) == 1
