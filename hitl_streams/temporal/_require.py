"""Fail early, with the fix, when the `temporal` extra is not installed."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("temporalio") is None:
    raise ImportError(
        "hitl_streams.temporal needs the Temporal SDK: pip install 'hitl-streams[temporal]' (installs temporalio)"
    )
