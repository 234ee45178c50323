"""`hitl-streams serve` chooses one resolver: the flags, their help, and the one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hitl_streams.cli import app
from hitl_streams.testing.redis_server import free_port

CLI = str(Path(sys.executable).parent / "hitl-streams")


def test_help_documents_every_resolver() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in (
        "--webhook-url",
        "--webhook-secret",
        "--temporal-address",
        "--temporal-namespace",
        "--dbos-database-url",
    ):
        assert flag in result.output


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    # A free port: the default 8000 may be taken (a Quickstart server running beside the tests).
    port = ["--port", str(free_port())] if "--port" not in args else []
    return subprocess.run([CLI, "serve", *port, *args], capture_output=True, text=True, timeout=60, check=False)


def test_two_resolvers_are_refused_in_one_line(tmp_path: Path) -> None:
    result = run_serve(
        "--data-dir", str(tmp_path), "--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret", "s",
        "--temporal-address", "127.0.0.1:9",
    )  # fmt: skip
    assert result.returncode != 0
    assert result.returncode == 2  # bad input, as every command's
    assert result.stderr.strip() == (
        "hitl-streams: error: choose one resolver: --webhook-url and --temporal-address were both given (pass only one)"
    )
    assert not any(tmp_path.iterdir())  # refused before anything started


def test_temporal_and_dbos_together_are_refused(tmp_path: Path) -> None:
    result = run_serve("--temporal-address", "127.0.0.1:9", "--dbos-database-url", f"sqlite:///{tmp_path}/x.sqlite")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "hitl-streams: error: choose one resolver: --temporal-address and --dbos-database-url were both given "
        "(pass only one)"
    ]


def test_an_unreachable_temporal_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_serve("--data-dir", str(tmp_path / "data"), "--temporal-address", "127.0.0.1:9")
    assert result.returncode == 3  # unreachable, as every command's
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("hitl-streams: error: cannot reach Temporal at 127.0.0.1:9: ")


def test_a_database_dbos_never_launched_on_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_serve("--data-dir", str(tmp_path / "data"), "--dbos-database-url", f"sqlite:///{tmp_path}/none.sqlite")
    assert result.returncode == 3
    [line] = [line for line in result.stderr.strip().splitlines() if "INFO" not in line]
    assert line.startswith(
        f"hitl-streams: error: cannot open the DBOS system database sqlite:///{tmp_path}/none.sqlite: "
    )
    assert "no such table" in line
