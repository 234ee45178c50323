"""The infra fixtures for the tests of the test infrastructure itself (see hitl_streams.testing.fixtures_infra)."""

from hitl_streams.testing.fixtures_infra import (  # noqa: F401
    crashable_redis,
    redis_cluster,
    redis_cluster_client,
    redis_proxy,
)
