"""The README's workflow-side examples are the files in docs/examples/, verbatim, and each one runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"

# Example -> a line its output must contain.
EXPECTED = {
    "custom_primitives": "Resolved True",
    "in_process": "approved: ship it",
    "test_harness": "timed out after 48.0 hours",
    "agent_approval": "ToolMessage: Sent 'Invoice #42' to ana@example.com",
}
# The subsections of "## The workflow side" whose python blocks are these examples (engine bindings have
# their own subsections and tests).
OWN_SUBSECTIONS = (
    "## The workflow side",
    "### In process: `hitl.client()`",
    "### Testing workflows: `create_test_hitl()`",
    "### Approval gate for agent tools: `require_approval`",
)


def own_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks: list[str] = []
    for heading in OWN_SUBSECTIONS:
        start = readme.index(heading + "\n")
        rest = readme[start + len(heading) :]
        end = re.search(r"^#{2,3} ", rest, flags=re.MULTILINE)
        body = rest if end is None else rest[: end.start()]
        blocks += re.findall(r"^```python\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)
    return blocks


def test_every_python_block_is_an_example_file() -> None:
    files = {path.read_text() for path in EXAMPLES.glob("*.py")}
    blocks = own_blocks()
    assert len(blocks) == len(EXPECTED)
    assert all(block in files for block in blocks)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_is_in_the_readme_and_runs(name: str) -> None:
    source = (EXAMPLES / f"{name}.py").read_text()
    assert source in own_blocks()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert EXPECTED[name] in done.stdout
