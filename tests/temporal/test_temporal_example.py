"""The README's Temporal example (docs/examples/temporal_approval.py) is in the README and runs."""

from __future__ import annotations

from pathlib import Path

from engine_examples import EXAMPLES, readme_blocks, run_example


def test_the_readme_shows_the_example_file() -> None:
    assert readme_blocks("### Temporal") == [(EXAMPLES / "temporal_approval.py").read_text()]


def test_the_example_runs(temporal_address: str, tmp_path: Path) -> None:
    output = run_example("temporal_approval", tmp_path, TEMPORAL_ADDRESS=temporal_address)
    assert output.splitlines() == ["reviewer sees: Refund $120 to order 1042?", "refunded $120"]
