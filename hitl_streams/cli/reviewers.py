"""`hitl-streams reviewers ...`: add, list, revoke reviewers; print sign-in links and API tokens.

Thin: each command calls the prefix's `ReviewerDirectory` (`StreamState.reviewers`), where every change
is an event in history (`hitl-streams audit <reviewer id>` shows who granted what, when). Same connection
options and exit codes as the operator commands (`cli/ops.py`); a name that is taken or revoked exits 2.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import msgspec
import typer

from ..history.keys import DEFAULT_TABLE
from ..results import Reviewer
from ..reviewers import (
    LINK_TTL_SECONDS,
    DuplicateReviewerError,
    ReviewerRecord,
    RevokedReviewerError,
    sign_in_link,
)
from ..streams.stream_state import StreamState
from .ops import (
    EXIT_USAGE,
    CliError,
    ClusterOption,
    JsonOption,
    PlainHelp,
    PlainHelpGroup,
    RedisUrlOption,
    TableOption,
    run,
    target,
)

__all__ = ["reviewers_app"]

reviewers_app = typer.Typer(
    name="reviewers",
    help="Reviewers: who may decide which namespaces, and how they sign in.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=PlainHelpGroup,
)

PublicUrlOption = Annotated[
    str | None,
    typer.Option(
        "--public-url",
        metavar="URL",
        envvar="HITL_PUBLIC_URL",
        show_envvar=True,
        help="The server's public base URL (e.g. https://hitl.example.com); links are absolute with it.",
    ),
]


def _operator() -> Reviewer:
    """The actor of the CLI's events: the operating-system user who ran it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Reviewer(id="cli", name=user)


def _taken(exc: Exception) -> CliError:
    return CliError(str(exc), EXIT_USAGE)


def _link_minutes() -> int:
    return LINK_TTL_SECONDS // 60


@reviewers_app.command("add", cls=PlainHelp)
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The reviewer's name (letters, digits, _ . @ -).")],
    namespaces: Annotated[
        str,
        typer.Option(
            "--namespaces", "-n", metavar="A,B", help='Comma-separated namespaces they may see and decide; "*" is all.'
        ),
    ],
    email: Annotated[
        str | None, typer.Option("--email", metavar="EMAIL", help="Their email (an SSO proxy's identity maps to it).")
    ] = None,
    public_url: PublicUrlOption = None,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
    slack_user: Annotated[
        str | None,
        typer.Option(
            "--slack-user", metavar="USER_ID", help="Their Slack user id (U0123ABCD): they decide from Slack."
        ),
    ] = None,
) -> None:
    """Add a reviewer for some namespaces and print a one-time sign-in link (15 minutes).

    Example:  hitl-streams reviewers add ada --namespaces billing,ops --email ada@example.com
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> tuple[ReviewerRecord, str]:
        try:
            reviewer = await state.reviewers.add(
                name, namespaces=namespaces.split(","), email=email, by=_operator(), slack_user=slack_user
            )
        except DuplicateReviewerError as exc:
            raise _taken(exc) from None
        return reviewer, (await state.reviewers.issue(name, "link", by=_operator())).token

    reviewer, token = run(where, body)
    typer.echo(f"added reviewer {reviewer.name} ({reviewer.id}) for {', '.join(reviewer.namespaces)}")
    typer.echo(f"sign-in link (works once, for {_link_minutes()} minutes):")
    typer.echo(sign_in_link(token, public_url))


@reviewers_app.command("list", cls=PlainHelp)
def list_(
    json_output: JsonOption = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Every reviewer, revoked ones included: name, id, email, namespaces, added, status.

    Example:  hitl-streams reviewers list --json
    """
    where = target(redis_url, table, cluster)
    reviewers: list[ReviewerRecord] = run(where, lambda state: state.reviewers.list())
    if json_output:
        for reviewer in reviewers:
            typer.echo(msgspec.json.encode(reviewer).decode())
        return
    rows = [
        (
            r.name,
            r.id,
            r.email or "-",
            ",".join(r.namespaces),
            r.added_at,
            "active" if r.active else f"revoked {r.revoked_at}",
        )
        for r in reviewers
    ]
    header = ("NAME", "ID", "EMAIL", "NAMESPACES", "ADDED", "STATUS")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        typer.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())


@reviewers_app.command("revoke", cls=PlainHelp)
def revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The reviewer's name.")],
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Revoke a reviewer: every session, link and token of theirs stops working at once, on every server.

    Revoking twice is harmless. The name can be added again later (as a new reviewer id).

    Example:  hitl-streams reviewers revoke ada
    """
    where = target(redis_url, table, cluster)
    reviewer: ReviewerRecord = run(where, lambda state: state.reviewers.revoke(name, by=_operator()))
    typer.echo(f"revoked {reviewer.name} ({reviewer.id}) at {reviewer.revoked_at}")


def _issue(where: Any, name: str, kind: Any) -> str:
    async def body(state: StreamState) -> str:
        try:
            return (await state.reviewers.issue(name, kind, by=_operator())).token
        except RevokedReviewerError as exc:
            raise _taken(exc) from None

    token: str = run(where, body)
    return token


@reviewers_app.command("link", cls=PlainHelp)
def link(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The reviewer's name.")],
    public_url: PublicUrlOption = None,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Print a new one-time sign-in link (15 minutes) for a reviewer.

    Example:  hitl-streams reviewers link ada --public-url https://hitl.example.com
    """
    typer.echo(sign_in_link(_issue(target(redis_url, table, cluster), name, "link"), public_url))


@reviewers_app.command("token", cls=PlainHelp)
def token(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The reviewer's name.")],
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Print a new API token for a reviewer (Authorization: Bearer <token> on the inbox API).

    One token per reviewer: the previous one stops working now (rotate a leaked token this way). It is
    shown once and stored only as a hash; it works until the next one or until the reviewer is revoked.

    Example:  curl -H "Authorization: Bearer $(hitl-streams reviewers token ada)" .../inbox/api/requests
    """
    typer.echo(_issue(target(redis_url, table, cluster), name, "token"))
