"""Test helpers that ship with hitl-streams: the reusable State contract suite and a real-Redis fixture.

- `hitl_streams.testing.contract.StateContract`: subclass it, supply a `state` fixture, and pytest runs
  every case of the State contract against your backend.
- `hitl_streams.testing.redis_server.start_redis()`: finds or starts a real Redis for tests.
- The pytest plugin (`hitl_streams.testing.plugin`, registered as an entry point) provides the
  `redis_server`, `redis_url`, `redis` and `table_name` fixtures.
"""
