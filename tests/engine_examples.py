"""The engine examples of the README (`### Temporal`, `### DBOS`) are the files in docs/examples/, verbatim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from engine_support import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def readme_blocks(heading: str) -> list[str]:
    """The python blocks of the README subsection `heading` (up to the next heading of level 2 or 3)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(heading + "\n") + len(heading)
    rest = readme[start:]
    end = re.search(r"^#{2,3} ", rest, flags=re.MULTILINE)
    body = rest if end is None else rest[: end.start()]
    return re.findall(r"^```python\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)


def run_example(name: str, cwd: Path, **env: str) -> str:
    """Runs docs/examples/NAME.py on a free port with `env`; returns its output (fails on an error)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "DBOS_", "TEMPORAL_"))}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=180,
        env={**clean, "HITL_PORT": str(free_port()), **env},
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
