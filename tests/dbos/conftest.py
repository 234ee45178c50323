"""DBOS for the binding's tests: one in-process DBOS on a SQLite system database in a temp folder.

DBOS is a process-wide singleton, so it is launched once for this folder's tests (the crash test runs
its own DBOS processes on their own database).
"""

from __future__ import annotations

from collections.abc import Iterator

import dbos_workflows  # noqa: F401  (registers the workflows before DBOS launches)
import pytest
from dbos import DBOS


@pytest.fixture(scope="session")
def dbos_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The system database URL of a launched in-process DBOS (destroyed at the end of the session)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dbos') / 'dbos.sqlite'}"
    DBOS(config={"name": "hitl-streams-tests", "system_database_url": url, "run_admin_server": False})
    DBOS.launch()
    try:
        yield url
    finally:
        DBOS.destroy()
