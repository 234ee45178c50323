"""The operator commands of `hitl-streams`: migrate, rebuild, verify, audit, timeline, stats, export,
import, adopt.

Thin: each command parses its options, calls library functions (`StreamState`, `adopt`, `archive`,
`stats`) and prints. `register(app)` adds them to the typer app in `cli.py`. Every command takes the same
connection options (`--redis-url`, `--table`, `--cluster`), handled by `target()`; every failure is one
line on stderr and an exit code from the table below, never a traceback.

Exit codes: 0 success; 1 `verify` found drift, or a confirmation was declined; 2 bad input (options,
table name, Redis URL, stream position, import file); 3 Redis unreachable or failing; 4 unknown id;
5 schema (the prefix needs adoption, already has history, lock held); 70 an unexpected error (a bug;
`HITL_STREAMS_DEBUG=1` shows its traceback); 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import re
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, TypeVar

import msgspec
import redis.exceptions
import typer
from typer.core import TyperCommand, TyperGroup

from .._urls import redact_url
from ..data_dir import DEFAULT_DATA_DIR, URL_FILE, recorded_url
from ..errors import HitlError, NotFoundError, SchemaError, ValidationError
from ..history import events as ev
from ..history.keys import DEFAULT_TABLE, Keys
from ..ops.archive import export_history, import_history
from ..ops.stats import collect_stats
from ..streams.connect import connect
from ..streams.replay import ReplayProgress
from ..streams.schema import ensure_schema
from ..streams.stream_state import StreamState

__all__ = ["EXIT_DRIFT", "EXIT_NOT_FOUND", "EXIT_REDIS", "EXIT_SCHEMA", "EXIT_USAGE", "Target", "register", "target"]

EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_REDIS = 3
EXIT_NOT_FOUND = 4
EXIT_SCHEMA = 5
EXIT_BUG = 70
EXIT_INTERRUPTED = 130

_T = TypeVar("_T")

RedisUrlOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        metavar="URL",
        envvar="REDIS_URL",
        show_envvar=True,
        help=(
            "Redis URL, e.g. redis://localhost:6379/0 or rediss://user:pass@host:6380/0. Default: REDIS_URL, "
            "else the URL that `hitl-streams serve` recorded in .hitl-data/redis.url of the current directory "
            "(its embedded server), so commands run where serve runs need no flag."
        ),
    ),
]
TableOption = Annotated[
    str,
    typer.Option(
        "--table",
        metavar="NAME",
        help="Table name, as in the TypeScript SDK: schema.table gives key prefix schema:table.",
    ),
]
ClusterOption = Annotated[
    bool, typer.Option("--cluster", help="Redis Cluster: the prefix is wrapped in a hash tag, {schema:table}.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class PlainHelp(TyperCommand):
    """A command whose help lists arguments by name alone: typer labels them `<str>`, `<Path>`."""

    def format_options(self, ctx: Any, formatter: Any) -> None:  # typer's vendored click types
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((param.metavar or (param.name or "").upper(), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class PlainHelpGroup(TyperGroup):
    """The app's help: each command with the whole first paragraph of its docstring, wrapped rather than
    cut off with "..." (click's default)."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            summary = (command.short_help or command.help or "").strip().split("\n\n", 1)[0]
            rows.append((name, " ".join(summary.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    typer.echo(f"hitl-streams: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


redact = redact_url
"""The URL without its password, for messages (`hitl_streams._urls`)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command works: a Redis URL and one key prefix."""

    redis_url: str
    table: str
    cluster: bool
    keys: Keys
    hint: str = ""
    """Said after the URL in errors, e.g. where a discovered URL came from."""

    def connect(self) -> Any:
        try:
            return connect(self.redis_url, cluster=self.cluster, socket_connect_timeout=5.0)
        except (ValueError, TypeError) as exc:
            raise CliError(f"invalid Redis URL {redact(self.redis_url)!r}: {exc}", EXIT_USAGE) from None


def target(redis_url: str | None, table: str, cluster: bool) -> Target:
    """The shared handling of `--redis-url`, `--table` and `--cluster`: validated, or a clear exit.

    Without `--redis-url` and `REDIS_URL`, the URL `hitl-streams serve` recorded in `./.hitl-data`."""
    hint = ""
    if not redis_url:
        redis_url = recorded_url(DEFAULT_DATA_DIR)
        if not redis_url:
            fail(
                "no Redis given: pass --redis-url redis://host:6379/0, set REDIS_URL, or run this where "
                f"`hitl-streams serve` runs (it records its URL in {DEFAULT_DATA_DIR / URL_FILE})",
                EXIT_USAGE,
            )
        hint = f" (recorded in {DEFAULT_DATA_DIR / URL_FILE}; is hitl-streams serve running?)"
    try:
        keys = Keys.for_table(table, cluster=cluster)
    except ValidationError as exc:
        fail(f"{exc} (expected name or schema.name, letters, digits and _)", EXIT_USAGE)
    return Target(redis_url, table, cluster, keys, hint)


def explain(exc: BaseException, url: str, hint: str = "") -> tuple[str, int]:
    """The one line and the exit code for a failure talking to Redis at `url` (already redacted); `hint`
    follows the URL when it cannot be reached."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; nothing half-done stays behind, running the command again is safe", EXIT_INTERRUPTED
    if isinstance(exc, NotFoundError):
        return str(exc), EXIT_NOT_FOUND
    if isinstance(exc, SchemaError):
        return str(exc), EXIT_SCHEMA
    if isinstance(exc, ValidationError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, HitlError):
        return str(exc), EXIT_SCHEMA
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return f"Redis at {url} refused the credentials: {exc}", EXIT_REDIS
    if isinstance(exc, redis.exceptions.ResponseError) and "NOAUTH" in str(exc):
        return f"Redis at {url} needs a password: {exc}", EXIT_REDIS
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)):
        return f"cannot reach Redis at {url}{hint}: {exc}", EXIT_REDIS
    if isinstance(exc, redis.exceptions.RedisClusterException):
        return f"Redis Cluster at {url}: {exc}", EXIT_REDIS
    if isinstance(exc, redis.exceptions.RedisError):
        return f"Redis at {url} answered with an error: {exc}", EXIT_REDIS
    return f"unexpected {type(exc).__name__}: {exc} (set HITL_STREAMS_DEBUG=1 for the traceback)", EXIT_BUG


def run(where: Target, body: Callable[[StreamState], Awaitable[_T]]) -> _T:
    """Run `body` with a StreamState on `where`, turning every failure into one line and an exit code."""

    async def main() -> _T:
        client = where.connect()
        try:
            return await body(StreamState(client, table_name=where.table, cluster=where.cluster))
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except BrokenPipeError:
        raise  # stdout went away (`export | head`): the command decides
    except (Exception, KeyboardInterrupt) as exc:
        if os.environ.get("HITL_STREAMS_DEBUG") and explain(exc, "")[1] == EXIT_BUG:
            raise  # a bug: still one line, the traceback on request
        fail(*explain(exc, redact(where.redis_url), where.hint))


# --- progress -----------------------------------------------------------------------------------------------
_PHASES = {
    "scan": "scanning keys",
    "import": "importing",
    "export": "exporting",
    "replay": "replaying",
    "compare": "comparing",
    "swap": "swap",
}


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """A progress bar (events done, events/s, ETA) on a terminal; plain lines, at most one a second per
    phase, otherwise. Always on stderr, so stdout stays clean for `--json`."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, float] = {}

    def __enter__(self) -> Progress:
        if self.tty and not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>10,.0f} events/s  ETA {task.fields[eta]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, p: ReplayProgress) -> None:
        if self.quiet:
            return
        eta = _clock((p.total - p.done) / p.rate) if p.rate > 0 else "?"
        name = _PHASES.get(p.phase, p.phase)
        if self._bar is not None:
            task = self._tasks.get(p.phase)
            if task is None:
                task = self._tasks[p.phase] = self._bar.add_task(name, total=p.total, rate=0.0, eta="?")
            self._bar.update(task, completed=p.done, total=p.total, rate=p.rate, eta=eta)
            return
        now = time.monotonic()
        if p.done < p.total and now - self._last.get(p.phase, 0.0) < 1.0:
            return
        self._last[p.phase] = now
        typer.echo(f"{name}: {p.done}/{p.total} events, {p.rate:,.0f} events/s, ETA {eta}", err=True)


# --- output helpers -----------------------------------------------------------------------------------------
_json = msgspec.json.Encoder()


def _compact(value: Any) -> str:
    return value if isinstance(value, str) and value and " " not in value else _json.encode(value).decode()


def _actor(event: ev.Event) -> str:
    actor = event.actor
    if isinstance(actor, msgspec.UnsetType):
        return "-"
    return actor.name or actor.id or actor.email or "-"


def _describe_reviewer(event: ev.Event) -> str | None:
    """Reviewer events in one line: who, what, which credential (by its public id, never a hash)."""
    match event:
        case ev.ReviewerAdded(reviewer=r):
            email = f" email={r.email}" if r.email else ""
            slack = f" slack={r.slack_user}" if r.slack_user else ""
            return f"name={r.name}{email}{slack} namespaces={','.join(r.namespaces)}"
        case ev.ReviewerRevoked(reviewer=r):
            return f"name={r.name} revoked"
        case ev.ReviewerCredentialIssued(credential=c):
            expires = f" expires={c.expires_at}" if c.expires_at else ""
            return f"{c.kind}={c.id}{expires}"
        case ev.ReviewerSignedIn(link=link, session=session):
            return f"link={link.id} session={session.id} expires={session.expires_at}"
        case ev.ReviewerSignedOut(session=session):
            return f"session={session.id} ended"
    return None


def describe(event: ev.Event) -> str:
    """The details column of `audit`: what the event says, in one line."""
    short = _describe_reviewer(event)
    if short is not None:
        return short
    data: dict[str, Any] = msgspec.to_builtins(event)
    if isinstance(event, ev.RequestCreated):  # history keeps the request; show the record it created
        data.pop("request", None)
        data["record"] = msgspec.to_builtins(event.record)
    if isinstance(event, ev.RequestResolved | ev.RequestTimedOut):  # history keeps the result's own fields
        for name in ("actionId", "externalRef", "feedbacks", "edited", "resultId"):
            data.pop(name, None)
        data["result"] = msgspec.to_builtins(event.result)
    for envelope in ("type", "v", "at", "actor"):
        data.pop(envelope, None)
    record = data.pop("record", None) or data.pop("entry", None)
    parts: list[str] = []
    if isinstance(record, dict):
        for name in ("id", "threadId", "channel", "namespace", "groupId", "status", "externalId"):
            if name in record:
                parts.append(f"{name}={_compact(record[name])}")
        if "batchId" in record:
            parts.append(f"batch={record['batchId']}#{record.get('batchIndex', '?')}")
        if isinstance(record.get("actions"), list):
            parts.append("actions=" + ",".join(str(a.get("id")) for a in record["actions"]))
        if "message" in record:
            parts.append(f"message={_json.encode(record['message']).decode()}")
    result = data.pop("result", None)
    if isinstance(result, dict):
        if result.get("type") == "RESOLVED":
            parts.append(f"action={result.get('actionId')}")
            parts.append(f"feedbacks={_compact(result.get('feedbacks', {}))}")
            if result.get("edited"):
                parts.append("edited")
        else:
            parts.append("timed out")
        data.pop("resolvedAt", None)
    data.pop("id", None)
    parts += [f"{k}={_compact(v)}" for k, v in data.items()]
    return " ".join(parts)


def _print_json_lines(items: list[Any]) -> None:
    for item in items:
        typer.echo(_json.encode(item).decode())


_PAGE = 500
"""Rows `audit` and `timeline` read per round trip: they print page by page, however long the history."""


async def _pages(
    fetch: Callable[[str | None], Awaitable[list[_T]]], cursor_of: Callable[[_T], str]
) -> AsyncIterator[list[_T]]:
    """Every page `fetch(cursor)` gives, oldest first, until an empty one (a page can be short and yet
    not the last: an audit page leaves out events archived away)."""
    cursor: str | None = None
    while page := await fetch(cursor):
        yield page
        cursor = cursor_of(page[-1])


class _StreamedTable:
    """A table printed page by page: the column widths are the header's and the first page's."""

    def __init__(self, header: tuple[str, ...]) -> None:
        self._header = header
        self._widths: list[int] | None = None

    def rows(self, rows: Sequence[tuple[str, ...]]) -> None:
        if self._widths is None:
            self._widths = [max(len(r[i]) for r in [self._header, *rows]) for i in range(len(self._header) - 1)]
            rows = [self._header, *rows]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, self._widths, strict=False)]
            typer.echo("  ".join([*cells, row[-1]]).rstrip())


# --- commands -----------------------------------------------------------------------------------------------
def migrate(
    status: Annotated[bool, typer.Option("--status", help="Only list applied and pending steps.")] = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Apply pending projection steps (migrations/NNNN_*.py) by replaying history through them.

    With --status, list the applied and pending steps with their ids and descriptions instead. Safe to run
    while servers run and from several places at once (one does the work under the prefix lock).

    Example:  hitl-streams migrate --status --redis-url redis://localhost:6379/0
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> None:
        before = await state.schema_status()
        if not status:
            with Progress() as progress:
                await ensure_schema(state.redis, state.keys, state.projector, progress=progress)
            after = await state.schema_status()
            applied = [s.id for s in before.pending if s not in after.pending]
            typer.echo(f"applied {len(applied)} step(s): {', '.join(applied)}" if applied else "up to date")
            before = after
        typer.echo(f"{where.keys.prefix}: {before.history_events} events in history")
        for label, steps in (("applied", before.applied), ("pending", before.pending)):
            for step in steps:
                typer.echo(f"  {label:<8} {step.id:<26} {_summary(step.description)}")

    run(where, body)


def _summary(description: str, width: int = 100) -> str:
    """A step's description on one line: its first sentence, shortened at a word boundary if need be."""
    flat = " ".join(description.split())
    first = re.split(r"(?<=\.)\s", flat, maxsplit=1)[0]
    return textwrap.shorten(first, width=width, placeholder=" ...")


SweepOption = Annotated[
    bool | None,
    typer.Option(
        "--sweep/--no-sweep",
        help="Also SCAN the whole keyspace for keys under the prefix that no event names (O(all keys)). "
        "Default: only when the database is not much larger than the prefix.",
        show_default=False,
    ),
]


def rebuild(
    yes: YesOption = False,
    sweep: SweepOption = None,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Rewrite the whole projection (records and indexes) from the event stream.

    Replays history into a scratch prefix, then swaps it in key by key: readers never see a missing key,
    and Ctrl-C at any point leaves a usable projection (run it again). Servers may keep writing: the
    replay catches up with their events, and their writes wait only while the swap runs.

    Example:  hitl-streams rebuild --yes --table hitl.human_requests
    """
    where = target(redis_url, table, cluster)
    if not yes:
        events = run(where, lambda state: state.redis.xlen(where.keys.events))
        typer.confirm(f"Rewrite the projection of {where.keys.prefix} from {events} events?", abort=True)

    async def body(state: StreamState) -> Any:
        with Progress() as progress:
            return await state.rebuild(progress=progress, sweep=sweep)

    stats = run(where, body)
    typer.echo(
        f"rebuilt {where.keys.prefix}: {stats.events} events, {stats.keys_written} writes, "
        f"{stats.seconds:.2f}s ({stats.events_per_second:,.0f} events/s)"
    )


def verify(
    json_output: JsonOption = False,
    sweep: SweepOption = None,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Compare the projection with a replay of history, without writing to it.

    Prints the keys that are missing, extra or differing. Exit code 0 when clean, 1 on drift.

    Example:  hitl-streams verify --json | jq .differing
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> Any:
        with Progress(quiet=json_output) as progress:
            return await state.verify(progress=progress, sweep=sweep)

    report = run(where, body)
    if json_output:
        typer.echo(_json.encode(report.to_dict()).decode())
    else:
        verdict = "clean" if report.clean else "DRIFT"
        typer.echo(f"{verdict}: {report.events} events replayed, {report.keys_checked} keys checked")
        if not report.swept:
            typer.echo("  (not swept: keys under the prefix that no event names were not looked for; --sweep)")
        for label, names in (("missing", report.missing), ("extra", report.extra), ("differing", report.differing)):
            for name in names:
                typer.echo(f"  {label:<9} {name}")
    if not report.clean:
        raise typer.Exit(EXIT_DRIFT)


def audit(
    subject_id: Annotated[str, typer.Argument(metavar="ID", help="A request, batch, notify delivery or thread id.")],
    json_output: JsonOption = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """The full history of a request (or batch, notify delivery, thread): time, event, actor, details.

    Created, delivered, re-delivered, reminded, escalated, resolved by whom with what, timed out, resume
    attempts. --json prints one JSON object per line: {"position": ..., "event": {...}}.

    Example:  hitl-streams audit 3f2a9c1e-... --json
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> None:
        out = _StreamedTable(("TIME", "EVENT", "ACTOR", "DETAILS"))
        seen = False
        fetch = functools.partial(_audit_page, state, subject_id)
        async for records in _pages(fetch, lambda r: r.position):
            seen = True
            if json_output:
                _print_json_lines([{"position": r.position, "event": r.event} for r in records])
            else:
                out.rows([(r.event.at, _type_of(r.event), _actor(r.event), describe(r.event)) for r in records])
        if not seen:
            raise NotFoundError(f'Unknown request, batch, notify delivery or thread "{subject_id}" (no history)')

    run(where, body)


async def _audit_page(state: StreamState, subject_id: str, cursor: str | None) -> list[ev.AuditRecord]:
    return await state.audit(subject_id, limit=_PAGE, cursor=cursor)


async def _timeline_page(state: StreamState, thread_id: str, cursor: str | None) -> list[Any]:
    return await state.timeline(thread_id, limit=_PAGE, cursor=cursor)


def _type_of(event: ev.Event) -> str:
    return str(msgspec.to_builtins(event)["type"])


def timeline(
    thread_id: Annotated[
        str, typer.Argument(metavar="THREAD", help="The thread (group) id: a request, batch or notify group.")
    ],
    json_output: JsonOption = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """The timeline entries of a thread, oldest first: time, entry id, message, detail.

    A request, batch or thread that exists but has no entries prints just the header (exit 0); an id
    nothing was ever recorded about exits 4.

    Example:  hitl-streams timeline 3f2a9c1e-... --json
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> None:
        out = _StreamedTable(("TIME", "ENTRY", "MESSAGE", "DETAIL"))
        seen = False
        async for entries in _pages(functools.partial(_timeline_page, state, thread_id), lambda e: e.id):
            seen = True
            if json_output:
                _print_json_lines(entries)
            else:
                out.rows(
                    [(e.created_at, e.id, e.message, "" if e.detail is None else _compact(e.detail)) for e in entries]
                )
        if not seen and not await state.audit(thread_id):  # unknown, not merely empty
            raise NotFoundError(f'Unknown thread "{thread_id}" (no timeline entries, no history)')
        if not seen and not json_output:
            out.rows([])

    run(where, body)


def schedule(
    subject_id: Annotated[str, typer.Argument(metavar="ID", help="A request or batch id.")],
    json_output: JsonOption = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """What is due for a request or batch with a server-side schedule: the deadline, what fires next, and
    every fire so far (when it was due, how late it ran, what it did).

    --json prints {"schedule": {...as set...}, "next": {...}, "fires": [...]}.

    Example:  hitl-streams schedule 3f2a9c1e-...
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> tuple[dict[str, Any], dict[str, Any], list[ev.ScheduleFired]]:
        found = await state.get_schedule(subject_id)
        if found is None:
            raise NotFoundError(f'No server-side schedule for "{subject_id}"')
        fires = [r.event for r in await state.audit(subject_id) if isinstance(r.event, ev.ScheduleFired)]
        return found[0], found[1], fires

    spec, following, fires = run(where, body)
    if json_output:
        typer.echo(_json.encode({"schedule": spec, "next": following, "fires": fires}).decode())
        return
    typer.echo(f"subject     {spec.get('subject', 'request')} {subject_id}")
    typer.echo(f"anchor      {spec.get('anchor')}")
    typer.echo(f"deadline    {spec.get('timeoutAt', 'none')}")
    typer.echo(f"reminders   {len(spec.get('reminders', []))}")
    if "at" in following:
        what = "the deadline" if following.get("fire") == -1 else f"reminder #{following.get('fire')}"
        typer.echo(f"next        {what} at {following['at']}")
    else:
        typer.echo(f"next        nothing ({following.get('done', 'done')})")
    if fires:
        rows = [
            (
                f.at,
                "deadline" if f.fire == -1 else f"reminder #{f.fire}",
                f.due_at,
                f"{f.late_ms} ms",
                f.outcome + (f" (+{f.skipped} folded)" if f.skipped else ""),
            )
            for f in fires
        ]
        _StreamedTable(("FIRED", "ITEM", "DUE", "LATE", "OUTCOME")).rows(rows)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def stats(
    json_output: JsonOption = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Counts by status and namespace, stream length, first/last event, steps, memory used by the prefix.

    Memory is the sum of Redis MEMORY USAGE over the prefix's keys: an approximation.

    Example:  hitl-streams stats --json
    """
    where = target(redis_url, table, cluster)
    result = run(where, lambda state: collect_stats(state.redis, state.keys, state.projector))
    if json_output:
        typer.echo(_json.encode(result.to_dict()).decode())
        return
    status = result.by_status
    typer.echo(f"prefix      {result.prefix}")
    typer.echo(f"requests    {result.requests} (pending {status['pending']}, resolved {status['resolved']})")
    for i, (ns, counts) in enumerate(result.by_namespace.items()):
        label = "namespaces" if i == 0 else ""
        line = f"{counts['total']} (pending {counts['pending']}, resolved {counts['resolved']})"
        typer.echo(f"{label:<11} {ns}: {line}")
    first, last = result.first_event, result.last_event
    span = f", first {first[1]} ({first[0]}), last {last[1]} ({last[0]})" if first and last else ""
    typer.echo(f"history     {result.stream_length} events{span}")
    pending = f", pending: {', '.join(result.steps_pending)}" if result.steps_pending else ", none pending"
    typer.echo(f"steps       {len(result.steps_applied)} applied{pending}")
    overdue = result.oldest_overdue
    late = f", oldest overdue {overdue[0]} by {overdue[1] / 1000:.1f} s" if overdue else ", none overdue"
    typer.echo(f"schedules   {result.due} with something due{late}")
    typer.echo(f"memory      ~{_size(result.memory_bytes)} in {result.keys} keys (approximate: MEMORY USAGE summed)")


def export(
    since: Annotated[str | None, typer.Option("--since", metavar="ID", help="First stream id (inclusive).")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="ID", help="Last stream id (inclusive).")] = None,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Write the history as JSON lines to stdout, streaming (constant memory).

    One line per event: {"position": "<stream id>", "event": {...}}, the event exactly as stored. `import`
    loads such a file into an empty prefix.

    Example:  hitl-streams export --since 1764090184512-0 > history.jsonl
    """
    where = target(redis_url, table, cluster)
    out = typer.get_binary_stream("stdout")

    async def body(state: StreamState) -> None:
        with Progress() as progress:
            async for line in export_history(state.redis, state.keys, since=since, until=until, progress=progress):
                out.write(line)
        out.flush()

    try:
        run(where, body)
    except BrokenPipeError:  # `export | head`: the reader is gone, which is fine
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            # Python would report the failed flush of stdout at exit; point it at /dev/null instead.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _read_lines(path: Path) -> Iterator[bytes]:
    stream: IO[bytes]
    stream = typer.get_binary_stream("stdin") if str(path) == "-" else path.open("rb")
    try:
        yield from stream
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def import_(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="An export (JSON lines); - reads stdin.")],
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Load an export into an empty prefix and project it (positions are kept).

    Example:  hitl-streams import history.jsonl --table restore.human_requests
    """
    where = target(redis_url, table, cluster)
    if str(path) != "-" and not path.is_file():
        fail(f"{path}: no such file", EXIT_USAGE)

    async def body(state: StreamState) -> Any:
        with Progress() as progress:
            return await import_history(state.redis, state.keys, _read_lines(path), state.projector, progress=progress)

    result = run(where, body)
    typer.echo(f"imported {result.events} events into {where.keys.prefix} ({result.seconds:.2f}s)")


def adopt(
    yes: YesOption = False,
    json_output: JsonOption = False,
    redis_url: RedisUrlOption = None,
    table: TableOption = DEFAULT_TABLE,
    cluster: ClusterOption = False,
) -> None:
    """Take over a TypeScript IoredisState deployment (projection keys, no history).

    Writes one imported event per request, batch, timeline entry and notify delivery, so history starts
    now and verify is clean; records are rewritten as canonical JSON (legacy action shapes and cjson
    damage repaired), lookup indexes are kept (stale entries included), legacy SET indexes become sorted
    sets. Stop the TypeScript writers first. Refuses, changing nothing, if the prefix already has history
    or holds keys it does not recognize.

    Example:  hitl-streams adopt --yes --table hitl.human_requests
    """
    where = target(redis_url, table, cluster)
    if not yes:
        typer.confirm(
            f"Adopt the TypeScript data under {where.keys.prefix} (stop TypeScript writers first)?", abort=True
        )

    async def body(state: StreamState) -> Any:
        with Progress(quiet=json_output) as progress:
            return await state.adopt(progress=progress)

    report = run(where, body)
    if json_output:
        typer.echo(_json.encode(report.to_dict()).decode())
        return
    typer.echo(
        f"adopted {where.keys.prefix}: {report.requests} requests, {report.batches} batches, "
        f"{report.timeline_entries} timeline entries, {report.notify_deliveries} notify deliveries "
        f"-> {report.events} events ({report.seconds:.2f}s)"
    )
    for label, names in (
        ("rewritten as canonical JSON", report.rewritten),
        ("index repaired to match records", report.repaired),
        ("index added", report.added),
        ("dropped (points at nothing)", report.dropped),
    ):
        for name in names:
            typer.echo(f"  {label}: {name}")
    for warning in report.warnings:
        typer.echo(f"hitl-streams: warning: {warning}", err=True)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the `hitl-streams` app."""
    for command, name in (
        (migrate, "migrate"),
        (rebuild, "rebuild"),
        (verify, "verify"),
        (audit, "audit"),
        (timeline, "timeline"),
        (stats, "stats"),
        (schedule, "schedule"),
        (export, "export"),
        (import_, "import"),
        (adopt, "adopt"),
    ):
        app.command(name, cls=PlainHelp)(command)
