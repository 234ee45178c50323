"""The `hitl-streams` command line: thin typer commands over library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..__about__ import __version__
from ..history.keys import DEFAULT_TABLE
from .ops import ClusterOption, RedisUrlOption, TableOption
from .ops import register as register_operator_commands

DEFAULT_DATA_DIR = Path(".hitl-data")

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


@app.command()
def serve(
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory of the embedded Redis (used without --redis-url).")
    ] = DEFAULT_DATA_DIR,
    webhook_url: Annotated[
        str | None,
        typer.Option("--webhook-url", envvar="HITL_WEBHOOK_URL", help="Resume workflows by POSTing decisions here."),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option("--webhook-secret", envvar="HITL_WEBHOOK_SECRET", help="HMAC key signing the webhook POSTs."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    resume_claim_idle: Annotated[
        float,
        typer.Option(
            "--resume-claim-idle",
            help="Seconds before another replica takes over the decisions a dead replica held.",
        ),
    ] = 10.0,
    wait_replicas: Annotated[
        int,
        typer.Option(
            "--wait-replicas",
            min=0,
            help="After every write, wait (up to 1 s) for this many Redis replicas to acknowledge it.",
        ),
    ] = 0,
) -> None:
    """Serve the HTTP API under uvicorn; with no Redis URL, on an embedded Redis-compatible server.

    The bearer secret of the API is read from HITL_SECRET. Ctrl-C stops it (and the embedded server).
    """
    from ..server.serve import ServeOptions
    from ..server.serve import serve as run

    run(
        ServeOptions(
            host=host,
            port=port,
            redis_url=redis_url,
            table=table,
            cluster=cluster,
            data_dir=data_dir,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            log_level=log_level,
            resume_claim_idle=resume_claim_idle,
            wait_replicas=wait_replicas,
        ),
        echo=typer.echo,
    )


register_operator_commands(app)
