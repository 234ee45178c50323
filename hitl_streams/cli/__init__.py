"""The `hitl-streams` command line: thin typer commands over library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..__about__ import __version__
from ..data_dir import DEFAULT_DATA_DIR
from ..history.keys import DEFAULT_TABLE
from .ops import ClusterOption, PlainHelp, PlainHelpGroup, TableOption, fail
from .ops import register as register_operator_commands
from .reviewers import reviewers_app

app = typer.Typer(
    name="hitl-streams",
    help="Human-in-the-loop approvals for durable workflows, event-sourced on Redis Streams.",
    no_args_is_help=True,
    add_completion=False,
    # Click's plain help: paragraphs reflowed to the terminal, no `<bool>`/`<str>` type labels.
    rich_markup_mode=None,
    cls=PlainHelpGroup,
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


@app.command(cls=PlainHelp)
def serve(
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            metavar="URL",
            envvar="REDIS_URL",
            show_envvar=True,
            help="Your Redis, e.g. redis://localhost:6379/0; checked before serving. Without it, an embedded Valkey.",
        ),
    ] = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8000,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir", metavar="DIR", help="Data directory of the embedded Redis (used without --redis-url)."
        ),
    ] = DEFAULT_DATA_DIR,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            metavar="URL",
            envvar="HITL_WEBHOOK_URL",
            help="Resume workflows by POSTing decisions here.",
        ),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            "--webhook-secret",
            metavar="SECRET",
            envvar="HITL_WEBHOOK_SECRET",
            help="HMAC key signing the webhook POSTs.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", metavar="LEVEL", help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            metavar="N",
            help="Server processes, each a replica on the same Redis (for a server with cores to spare).",
        ),
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn's access log, at log level info).")
    ] = False,
    redis_port: Annotated[
        int | None,
        typer.Option(
            "--redis-port",
            metavar="PORT",
            help="Port of the embedded server (no --redis-url): default the previous start's, else 16379.",
        ),
    ] = None,
    temporal_address: Annotated[
        str | None,
        typer.Option(
            "--temporal-address",
            metavar="HOST:PORT",
            envvar="HITL_TEMPORAL_ADDRESS",
            help="Resume Temporal workflows by signalling them through this frontend (host:port; extra 'temporal').",
        ),
    ] = None,
    temporal_namespace: Annotated[
        str,
        typer.Option(
            "--temporal-namespace",
            metavar="NAMESPACE",
            envvar="HITL_TEMPORAL_NAMESPACE",
            help="Temporal namespace of the workflows.",
        ),
    ] = "default",
    dbos_database_url: Annotated[
        str | None,
        typer.Option(
            "--dbos-database-url",
            metavar="URL",
            envvar="HITL_DBOS_DATABASE_URL",
            help="Resume DBOS workflows by sending to them through this DBOS system database (extra 'dbos').",
        ),
    ] = None,
    inbox: Annotated[
        bool, typer.Option("--inbox", help="Serve the reviewer side: the inbox API under inbox/api/ (and inbox/).")
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            metavar="URL",
            envvar="HITL_PUBLIC_URL",
            help="Public base URL reviewers reach the server at.",
        ),
    ] = None,
    trust_proxy_header: Annotated[
        str | None,
        typer.Option(
            "--trust-proxy-header",
            metavar="HEADER",
            envvar="HITL_TRUST_PROXY_HEADER",
            help="Identity header of an authenticating proxy (e.g. X-Forwarded-Email); only behind that proxy.",
        ),
    ] = None,
    insecure_no_secret: Annotated[
        bool,
        typer.Option(
            "--insecure-no-secret",
            help="Serve a non-loopback --host without HITL_SECRET: an open API anyone reaching the port can use.",
        ),
    ] = False,
    resume_claim_idle: Annotated[
        float,
        typer.Option(
            "--resume-claim-idle",
            metavar="SECONDS",
            help="Seconds before another replica takes over the decisions a dead replica held.",
        ),
    ] = 10.0,
    wait_replicas: Annotated[
        int,
        typer.Option(
            "--wait-replicas",
            metavar="N",
            min=0,
            help="After every write, wait (up to 1 s) for this many Redis replicas to acknowledge it.",
        ),
    ] = 0,
    slack_bot_token: Annotated[
        str | None,
        typer.Option(
            "--slack-bot-token", metavar="TOKEN", envvar="SLACK_BOT_TOKEN", help="Enable the Slack channel (xoxb-...)."
        ),
    ] = None,
    slack_signing_secret: Annotated[
        str | None,
        typer.Option(
            "--slack-signing-secret",
            metavar="SECRET",
            envvar="SLACK_SIGNING_SECRET",
            help="The Slack app's signing secret.",
        ),
    ] = None,
    slack_channel: Annotated[
        str | None,
        typer.Option(
            "--slack-channel",
            metavar="CHANNEL",
            envvar="HITL_SLACK_CHANNEL",
            help='Where channel="slack" posts (C123).',
        ),
    ] = None,
    smtp_url: Annotated[
        str | None,
        typer.Option(
            "--smtp-url",
            metavar="URL",
            envvar="HITL_SMTP_URL",
            help="Enable the e-mail channel: smtp://user:pass@host:587?starttls=1",
        ),
    ] = None,
    mail_from: Annotated[
        str | None,
        typer.Option("--mail-from", metavar="ADDRESS", envvar="HITL_MAIL_FROM", help="The e-mail channel's sender."),
    ] = None,
) -> None:
    """Serve the HTTP API under uvicorn; with no Redis URL, on an embedded Redis-compatible server.

    The bearer secret of the API is read from HITL_SECRET. Without one, only a loopback --host is served
    (unless --insecure-no-secret). Ctrl-C stops it (and the embedded server).
    Decisions resume workflows through one resolver: --webhook-url (with --webhook-secret),
    --temporal-address (with --temporal-namespace) or --dbos-database-url.
    """
    from ..server.serve import ServeError, ServeOptions
    from ..server.serve import serve as run
    from .ops import explain, redact

    options = ServeOptions(
        host=host,
        port=port,
        redis_url=redis_url,
        table=table,
        cluster=cluster,
        data_dir=data_dir,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        log_level=log_level,
        access_log=access_log,
        workers=workers,
        redis_port=redis_port,
        temporal_address=temporal_address,
        temporal_namespace=temporal_namespace,
        dbos_database_url=dbos_database_url,
        inbox=inbox,
        public_url=public_url,
        trust_proxy_header=trust_proxy_header,
        insecure_no_secret=insecure_no_secret,
        resume_claim_idle=resume_claim_idle,
        wait_replicas=wait_replicas,
        slack_bot_token=slack_bot_token,
        slack_signing_secret=slack_signing_secret,
        slack_channel=slack_channel,
        smtp_url=smtp_url,
        mail_from=mail_from,
    )
    try:
        run(options, echo=typer.echo)
    except ServeError as exc:
        fail(str(exc), exc.code)
    except Exception as exc:  # Redis unreachable, refused credentials, a schema to adopt: as every command
        fail(*explain(exc, redact(redis_url or ""), ""))


register_operator_commands(app)
app.add_typer(reviewers_app)
