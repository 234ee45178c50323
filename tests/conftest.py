"""Shared test setup. The Redis fixtures come from the hitl_streams pytest plugin (hitl_streams.testing.plugin)."""

pytest_plugins = ["pytester"]
