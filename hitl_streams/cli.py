"""The `hitl-streams` command line: thin typer commands over library functions."""

from __future__ import annotations

import typer

from .__about__ import __version__
from .cli_ops import register as register_operator_commands

app = typer.Typer(
    name="hitl-streams",
    help="Human-in-the-loop approvals for durable workflows, event-sourced on Redis Streams.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hitl-streams {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """Human-in-the-loop approvals for durable workflows, event-sourced on Redis Streams."""


register_operator_commands(app)
