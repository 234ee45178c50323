"""DBOS for the binding's tests: an in-process DBOS on a SQLite system database in a temp folder.

DBOS is a process-wide singleton: it is launched for each test module that needs it and destroyed after
it, so its background threads do not outlive this folder's tests (the restart test and the example run
their own DBOS processes on their own databases).
"""

from __future__ import annotations

from collections.abc import Iterator

import dbos_workflows  # noqa: F401  (registers the workflows before DBOS launches)
import pytest
from dbos import DBOS


@pytest.fixture(scope="module")
def dbos_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The system database URL of a launched in-process DBOS (destroyed after the module's tests)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dbos') / 'dbos.sqlite'}"
    DBOS(config={"name": "hitl-streams-tests", "system_database_url": url, "run_admin_server": False})
    DBOS.launch()
    try:
        yield url
    finally:
        DBOS.destroy()
