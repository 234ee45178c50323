"""Fixtures for the channel tests: a `state` on InMemoryState and on StreamState (the plugin's real Redis)."""

from __future__ import annotations

import pytest

from hitl_streams import InMemoryState, State, StreamState


@pytest.fixture(params=["memory", pytest.param("redis-streams", marks=pytest.mark.redis)])
def state(request: pytest.FixtureRequest) -> State:
    if request.param == "memory":
        return InMemoryState()
    redis = request.getfixturevalue("redis")
    return StreamState(redis, table_name=request.getfixturevalue("table_name"))
