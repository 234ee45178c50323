"""The `hitl-streams` command line: thin typer commands over library functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from .__about__ import __version__
from .keys import DEFAULT_TABLE

DEFAULT_DATA_DIR = Path(".hitl-data")

app = typer.Typer(
    name="hitl-streams",
    help="Human-in-the-loop approvals for durable workflows, event-sourced on Redis Streams.",
    no_args_is_help=True,
    add_completion=False,
)


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """Options every command shares: where the data lives."""

    redis_url: str | None
    table: str
    cluster: bool


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hitl-streams {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    redis_url: str | None = typer.Option(
        None, "--redis-url", envvar="REDIS_URL", help="Redis URL (default: REDIS_URL; serve embeds one if unset)."
    ),
    table: str = typer.Option(DEFAULT_TABLE, "--table", help="Table name; its key prefix is schema:table."),
    cluster: bool = typer.Option(False, "--cluster", help="Redis Cluster: keep a prefix's keys in one hash slot."),
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """Human-in-the-loop approvals for durable workflows, event-sourced on Redis Streams."""
    ctx.obj = GlobalOptions(redis_url=redis_url, table=table, cluster=cluster)


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory of the embedded Redis (used without --redis-url).")
    ] = DEFAULT_DATA_DIR,
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", envvar="HITL_WEBHOOK_URL", help="Resume workflows by POSTing decisions here."
    ),
    webhook_secret: str | None = typer.Option(
        None, "--webhook-secret", envvar="HITL_WEBHOOK_SECRET", help="HMAC key signing the webhook POSTs."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the HTTP API (under uvicorn); with no Redis URL, on an embedded Redis-compatible server.

    The bearer secret of the API is read from HITL_SECRET.
    """
    from .server.serve import ServeOptions
    from .server.serve import serve as run

    shared: GlobalOptions = ctx.obj
    run(
        ServeOptions(
            host=host,
            port=port,
            redis_url=shared.redis_url,
            table=shared.table,
            cluster=shared.cluster,
            data_dir=data_dir,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            log_level=log_level,
        ),
        echo=typer.echo,
    )
