"""The README's DBOS example (docs/examples/dbos_approval.py) is in the README and runs."""

from __future__ import annotations

from pathlib import Path

from engine_examples import EXAMPLES, readme_blocks, run_example


def test_the_readme_shows_the_example_file() -> None:
    assert readme_blocks("### DBOS") == [(EXAMPLES / "dbos_approval.py").read_text()]


def test_the_example_runs(tmp_path: Path) -> None:
    output = run_example("dbos_approval", tmp_path, DBOS_SYSTEM_DATABASE_URL=f"sqlite:///{tmp_path / 'refunds.sqlite'}")
    assert output.splitlines() == ["reviewer sees: Refund $120 to order 1042?", "refund denied: already refunded"]
