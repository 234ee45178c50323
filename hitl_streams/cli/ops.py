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
import io
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis.exceptions
import typer

from ..errors import HitlError, NotFoundError, SchemaError, ValidationError
from ..history import events as ev
from ..history.keys import DEFAULT_TABLE, Keys
from ..ops.archive import export_history, import_history
from ..ops.stats import collect_stats
from ..streams.connect import connect
from ..streams.replay import ReplayProgress
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
        envvar="REDIS_URL",
        show_envvar=True,
        help="Redis URL, e.g. redis://localhost:6379/0 or rediss://user:pass@host:6380/0.",
    ),
]
TableOption = Annotated[
    str,
    typer.Option("--table", help="Table name, as in the TypeScript SDK: schema.table gives key prefix schema:table."),
]
ClusterOption = Annotated[
    bool, typer.Option("--cluster", help="Redis Cluster: the prefix is wrapped in a hash tag, {schema:table}.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    typer.echo(f"hitl-streams: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def _redact(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable URL>"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command works: a Redis URL and one key prefix."""

    redis_url: str
    table: str
    cluster: bool
    keys: Keys

    def connect(self) -> Any:
        try:
            return connect(self.redis_url, cluster=self.cluster, socket_connect_timeout=5.0)
        except (ValueError, TypeError) as exc:
            raise CliError(f"invalid Redis URL {_redact(self.redis_url)!r}: {exc}", EXIT_USAGE) from None


def target(redis_url: str | None, table: str, cluster: bool) -> Target:
    """The shared handling of `--redis-url`, `--table` and `--cluster`: validated, or a clear exit."""
    if not redis_url:
        fail("no Redis given: pass --redis-url redis://host:6379/0 or set REDIS_URL", EXIT_USAGE)
    try:
        keys = Keys.for_table(table, cluster=cluster)
    except ValidationError as exc:
        fail(f"{exc} (expected name or schema.name, letters, digits and _)", EXIT_USAGE)
    return Target(redis_url, table, cluster, keys)


def run(where: Target, body: Callable[[StreamState], Awaitable[_T]]) -> _T:
    """Run `body` with a StreamState on `where`, turning every failure into one line and an exit code."""

    async def main() -> _T:
        client = where.connect()
        try:
            return await body(StreamState(client, table_name=where.table, cluster=where.cluster))
        finally:
            await client.aclose()

    url = _redact(where.redis_url)
    try:
        return asyncio.run(main())
    except CliError as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        fail("interrupted; nothing half-done stays behind, running the command again is safe", EXIT_INTERRUPTED)
    except NotFoundError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except SchemaError as exc:
        fail(str(exc), EXIT_SCHEMA)
    except ValidationError as exc:
        fail(str(exc), EXIT_USAGE)
    except HitlError as exc:
        fail(str(exc), EXIT_SCHEMA)
    except BrokenPipeError:
        raise  # stdout went away (`export | head`): the command decides
    except redis.exceptions.AuthenticationError as exc:
        fail(f"Redis at {url} refused the credentials: {exc}", EXIT_REDIS)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        fail(f"cannot reach Redis at {url}: {exc}", EXIT_REDIS)
    except redis.exceptions.RedisClusterException as exc:
        fail(f"Redis Cluster at {url}: {exc}", EXIT_REDIS)
    except redis.exceptions.RedisError as exc:
        fail(f"Redis at {url} answered with an error: {exc}", EXIT_REDIS)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("HITL_STREAMS_DEBUG"):
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (set HITL_STREAMS_DEBUG=1 for the traceback)", EXIT_BUG)


# --- progress -----------------------------------------------------------------------------------------------
_PHASES = {
    "scan": "scanning keys",
    "import": "importing",
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
def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


_json = msgspec.json.Encoder()


def _compact(value: Any) -> str:
    return value if isinstance(value, str) and value and " " not in value else _json.encode(value).decode()


def _actor(event: ev.Event) -> str:
    actor = event.actor
    if isinstance(actor, msgspec.UnsetType):
        return "-"
    return actor.name or actor.id or actor.email or "-"


def describe(event: ev.Event) -> str:
    """The details column of `audit`: what the event says, in one line."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    if isinstance(event, ev.RequestCreated):  # history keeps the request; show the record it created
        data.pop("request", None)
        data["record"] = msgspec.to_builtins(event.record)
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
            await state.ensure_schema()
            after = await state.schema_status()
            applied = [s.id for s in before.pending if s not in after.pending]
            typer.echo(f"applied {len(applied)} step(s): {', '.join(applied)}" if applied else "up to date")
            before = after
        typer.echo(f"{where.keys.prefix}: {before.history_events} events in history")
        for label, steps in (("applied", before.applied), ("pending", before.pending)):
            for step in steps:
                summary = " ".join(step.description.split())
                typer.echo(f"  {label:<8} {step.id:<26} {summary[:100]}")

    run(where, body)


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

    async def body(state: StreamState) -> list[ev.AuditRecord]:
        records = await state.audit(subject_id)
        if not records:
            raise NotFoundError(f'Unknown request, batch, notify delivery or thread "{subject_id}" (no history)')
        return records

    records = run(where, body)
    if json_output:
        _print_json_lines([{"position": r.position, "event": r.event} for r in records])
        return
    rows = [(r.event.at, _type_of(r.event), _actor(r.event), describe(r.event)) for r in records]
    _table(("TIME", "EVENT", "ACTOR", "DETAILS"), rows)


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

    Example:  hitl-streams timeline 3f2a9c1e-... --json
    """
    where = target(redis_url, table, cluster)

    async def body(state: StreamState) -> list[Any]:
        entries = await state.timeline(thread_id)
        if not entries:
            raise NotFoundError(f'No timeline entries for thread "{thread_id}"')
        return entries

    entries = run(where, body)
    if json_output:
        _print_json_lines(entries)
        return
    rows = [(e.created_at, e.id, e.message, "" if e.detail is None else _compact(e.detail)) for e in entries]
    _table(("TIME", "ENTRY", "MESSAGE", "DETAIL"), rows)


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
        async for line in export_history(state.redis, state.keys, since=since, until=until):
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

    result = run(where, lambda state: import_history(state.redis, state.keys, _read_lines(path), state.projector))
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
        (export, "export"),
        (import_, "import"),
        (adopt, "adopt"),
    ):
        app.command(name)(command)
