"""The State contract suite (hitl_streams.testing.contract) against InMemoryState."""

from __future__ import annotations

from hitl_streams import InMemoryState, State
from hitl_streams.testing.contract import StateContract


class TestInMemoryState(StateContract):
    async def create_state(self) -> State:
        return InMemoryState()
