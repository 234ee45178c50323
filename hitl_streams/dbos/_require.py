"""Fail early, with the fix, when the `dbos` extra is not installed."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("dbos") is None:
    raise ImportError("hitl_streams.dbos needs DBOS Transact: pip install 'hitl-streams[dbos]' (installs dbos)")
