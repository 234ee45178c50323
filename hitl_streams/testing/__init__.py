"""Test helpers that ship with hitl-streams: the reusable State contract suite and a real-Redis fixture.

- `hitl_streams.testing.contract.StateContract`: subclass it, supply a `state` fixture, and pytest runs
  every case of the State contract against your backend.
- `hitl_streams.testing.redis_server.start_redis()`: finds or starts a real Redis for tests.
- `hitl_streams.testing.RecordingAdapter`: a channel adapter that records every call and fails on demand.
- `hitl_streams.testing.create_test_hitl()`: a `Hitl` and a client wired to it, with manual timers, to
  test workflow code with no engine and no network (REF §8).
- The pytest plugin (`hitl_streams.testing.plugin`, registered as an entry point) provides the
  `redis_server`, `redis_url`, `redis` and `table_name` fixtures.
"""

from .harness import TestHitl, create_test_hitl
from .recording import RecordedCall, RecordingAdapter

__all__ = ["RecordedCall", "RecordingAdapter", "TestHitl", "create_test_hitl"]
