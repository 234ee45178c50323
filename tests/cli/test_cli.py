"""The `hitl-streams` operator commands through typer's CliRunner, against a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import typer
from event_history import populate
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from ts_layout import write_ts_layout
from typer.testing import CliRunner

from hitl_streams import StreamState, TimelineEntry
from hitl_streams.cli import app
from hitl_streams.cli import ops as cli_ops
from hitl_streams.history.keys import Keys
from hitl_streams.history.projection import load_steps
from hitl_streams.testing.snapshot import snapshot

pytestmark = pytest.mark.redis

T = TypeVar("T")
COMMANDS = ["migrate", "rebuild", "verify", "audit", "timeline", "stats", "schedule", "export", "import", "adopt"]


@pytest.fixture
def cli(redis_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run `hitl-streams ARGS --redis-url ... --table ...`; returns the click Result."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, table: str = table_name, input: str | bytes | None = None) -> Any:
        return runner.invoke(app, [*args, "--redis-url", redis_url, "--table", table], input=input)

    yield invoke
    client = SyncRedis.from_url(redis_url)
    marker = table_name.split(".")[0]
    names = list(client.scan_iter(match=f"*{marker}*", count=1000))
    if names:
        client.delete(*names)
    client.close()


def on_redis(redis_url: str, table_name: str, body: Callable[[StreamState], Awaitable[T]]) -> T:
    async def main() -> T:
        client = Redis.from_url(redis_url)
        try:
            return await body(StreamState(client, table_name=table_name))
        finally:
            await client.aclose()

    return asyncio.run(main())


def snap(redis_url: str, table_name: str) -> dict[str, Any]:
    return on_redis(redis_url, table_name, lambda state: snapshot(state.redis, state.keys))


def one_error_line(result: Any) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("replaying: ")]
    assert len(lines) == 1, result.stderr  # progress lines aside, the error is one line
    assert lines[0].startswith("hitl-streams: error: ")
    return lines[0]


@pytest.mark.parametrize("command", ["", "serve", *COMMANDS])
@pytest.mark.parametrize("columns", ["60", "100"])
def test_help_has_no_type_labels_and_whole_paragraphs(command: str, columns: str) -> None:
    """No `<bool>`/`<str>` after flags and arguments; every docstring paragraph reflowed to the width (not
    cut mid-sentence by a hard line break, not cut off with "...")."""
    import re

    from hitl_streams.cli.ops import PlainHelp

    result = CliRunner().invoke(app, [*filter(None, [command]), "--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.stdout
    assert not re.search(r"<(bool|str|int|path|Path)>", result.stdout), result.stdout
    flat = "".join(result.stdout.split())  # words in order, however wrapped
    group = typer.main.get_group(app)
    target = group.get_command(None, command) if command else group  # type: ignore[arg-type]
    assert target is not None and (not command or isinstance(target, PlainHelp))
    for paragraph in (target.help or "").split("\n\n"):
        assert "".join(paragraph.split()) in flat
    if not command:  # every command listed with the first paragraph of its docstring, whole
        for name in ["serve", *COMMANDS]:
            sub = group.get_command(None, name)  # type: ignore[arg-type]
            assert sub is not None
            assert "".join((sub.help or "").split("\n\n")[0].split()) in flat
    # Each description line is filled up to the width before the next one starts (a hard line break of
    # the docstring would leave a short line followed by the rest of its sentence).
    width = min(int(columns), 80)
    description = result.stdout.split("\n\n", 1)[1].split("\nArguments:", 1)[0].split("\nOptions:", 1)[0]
    for block in description.split("\n\n"):
        lines = block.splitlines()
        for line, following in itertools.pairwise(lines):
            next_word = following.split()[0]
            assert len(line) + 1 + len(next_word) > width, f"{line!r} then {following!r}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_the_global_options(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stdout
    assert "Example:" in result.stdout and f"hitl-streams {command}" in result.stdout
    for option in ("--redis-url", "--table", "--cluster", "REDIS_URL"):
        assert option in result.stdout


def test_rebuild_over_live_keys_and_from_empty_is_byte_identical(
    cli: Callable[..., Any], redis_url: str, table_name: str
) -> None:
    on_redis(redis_url, table_name, populate)
    live = snap(redis_url, table_name)
    assert len(live) > 20

    declined = cli("rebuild", input="n\n")
    assert declined.exit_code == 1 and snap(redis_url, table_name) == live

    result = cli("rebuild", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "rebuilt" in result.stdout and "events/s" in result.stdout
    assert "replaying:" in result.stderr  # plain progress lines when not on a terminal
    assert snap(redis_url, table_name) == live

    client = SyncRedis.from_url(redis_url)
    client.delete(*live)  # every projection key gone; history and meta stay
    client.close()
    assert snap(redis_url, table_name) == {}
    result = cli("rebuild", input="y\n")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert snap(redis_url, table_name) == live


def test_verify_names_a_deleted_index_entry_a_changed_value_and_an_extra_key(
    cli: Callable[..., Any], redis_url: str, table_name: str
) -> None:
    on_redis(redis_url, table_name, populate)
    clean = cli("verify")
    assert clean.exit_code == 0 and clean.stdout.startswith("clean:")

    p = Keys.for_table(table_name).prefix
    client = SyncRedis.from_url(redis_url)
    client.zrem(f"{p}:idx:status:pending", "r3")
    client.set(f"{p}:req:r2", client.get(f"{p}:req:r2").replace(b'"namespace":"ops"', b'"namespace":"dev"'))
    client.set(f"{p}:idx:ext:bogus", "r1")
    client.close()

    result = cli("verify")
    assert result.exit_code == 1
    assert result.stdout.startswith("DRIFT:")
    assert f"differing {p}:idx:status:pending" in result.stdout
    assert f"differing {p}:req:r2" in result.stdout
    assert f"extra     {p}:idx:ext:bogus" in result.stdout

    as_json = cli("verify", "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["clean"] is False and report["extra"] == [f"{p}:idx:ext:bogus"]
    assert report["differing"] == [f"{p}:idx:status:pending", f"{p}:req:r2"] and report["missing"] == []

    client = SyncRedis.from_url(redis_url)
    client.delete(f"{p}:idx:token:tok-r1")
    client.close()
    assert f"missing   {p}:idx:token:tok-r1" in cli("verify").stdout


def test_audit_shows_a_requests_whole_life(cli: Callable[..., Any], redis_url: str, table_name: str) -> None:
    on_redis(redis_url, table_name, populate)
    result = cli("audit", "r1")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "ACTOR", "DETAILS"]
    kinds = [line.split()[1] for line in lines[1:]]
    assert kinds == [
        "request.created",
        "request.delivered",
        "request.external_id_set",
        "request.external_id_set",
        "request.redelivered",
        "request.reminded",
        "request.escalated",
        "request.external_id_set",
        "request.resolved",
        "resume.attempted",
        "resume.failed",
        "resume.succeeded",
        "timeline.appended",
        "notify.created",
        "timeline.appended",
    ]
    resolved = next(line for line in lines if "request.resolved" in line)
    assert " Ann " in resolved and "action=approve" in resolved and 'feedbacks={"note":"ok"}' in resolved
    assert "edited" in resolved
    assert "engine down" in next(line for line in lines if "resume.failed" in line)
    created = lines[1]
    assert "channel=slack" in created and "actions=approve,deny" in created and created[:4] == lines[-1][:4]

    as_json = cli("audit", "r1", "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["event"]["type"] for r in records] == kinds
    assert records[8]["event"]["actor"] == {"id": "u1", "name": "Ann"}
    assert all(r["position"] for r in records)

    batch = cli("audit", "b1")
    assert [line.split()[1] for line in batch.stdout.splitlines()[1:]] == [
        "batch.created",
        "request.created",
        "request.created",
        "batch.external_id_set",
        "batch.delivered",
    ]


def test_timeline_and_stats(cli: Callable[..., Any], redis_url: str, table_name: str) -> None:
    on_redis(redis_url, table_name, populate)
    result = cli("timeline", "r1")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["TIME", "ENTRY", "MESSAGE", "DETAIL"]
    assert [r[1] for r in rows[1:]] == ["e1", "e2"] and rows[2][3] == '{"items":[]}'
    entries = [json.loads(line) for line in cli("timeline", "r1", "--json").stdout.splitlines()]
    assert [e["id"] for e in entries] == ["e1", "e2"] and entries[1]["detail"] == {"items": []}

    # r3 exists and has no entries: an empty timeline, not an error; an id never seen is one (exit 4).
    empty = cli("timeline", "r3")
    assert (empty.exit_code, empty.stdout.split()) == (0, ["TIME", "ENTRY", "MESSAGE", "DETAIL"])
    assert (cli("timeline", "r3", "--json").exit_code, cli("timeline", "r3", "--json").stdout) == (0, "")
    unknown = cli("timeline", "never-seen")
    assert unknown.exit_code == 4 and 'Unknown thread "never-seen"' in one_error_line(unknown)

    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["requests"] == 5 and stats["byStatus"] == {"pending": 3, "resolved": 2}
    assert stats["byNamespace"]["ops"] == {"total": 2, "pending": 1, "resolved": 1}
    assert stats["streamLength"] > 20 and stats["stepsPending"] == [] and stats["memoryBytes"] > 0
    text = cli("stats").stdout
    assert "requests    5 (pending 3, resolved 2)" in text and "approximate" in text
    assert "ops: 2 (pending 1, resolved 1)" in text


def test_export_round_trips_through_import_and_rebuild(
    cli: Callable[..., Any], redis_url: str, table_name: str
) -> None:
    on_redis(redis_url, table_name, populate)
    exported = cli("export")
    assert exported.exit_code == 0
    lines = exported.stdout_bytes.splitlines(keepends=True)
    assert len(lines) > 20 and all(json.loads(line)["event"]["type"] for line in lines)

    assert exported.stderr.splitlines()[-1].startswith(f"exporting: {len(lines)}/{len(lines)} events")

    positions = [json.loads(line)["position"] for line in lines]
    window = cli("export", "--since", positions[3], "--until", positions[6])
    assert window.stdout_bytes.splitlines(keepends=True) == lines[3:7]

    copy = f"{table_name.split('.')[0]}.copy"
    imported = cli("import", "-", table=copy, input=exported.stdout_bytes)
    assert imported.exit_code == 0, imported.stderr
    assert f"imported {len(lines)} events" in imported.stdout
    progress = imported.stderr.splitlines()  # on stderr, at most one line a second per phase, and the last
    assert f"importing: {len(lines)}/{len(lines)} events" in "\n".join(progress)
    assert progress[-1].startswith(f"replaying: {len(lines)}/{len(lines)} events")
    assert cli("rebuild", "--yes", table=copy).exit_code == 0

    def rebased(table: str) -> dict[str, Any]:
        prefix = Keys.for_table(table).prefix
        return {k[len(prefix) :]: v for k, v in snap(redis_url, table).items()}

    assert rebased(copy) == rebased(table_name)
    assert cli("export", table=copy).stdout_bytes == exported.stdout_bytes
    assert cli("import", "-", table=copy, input=exported.stdout_bytes).exit_code == 5  # not empty any more


def test_adopt_a_typescript_deployment_then_verify_is_clean(
    cli: Callable[..., Any], redis_url: str, table_name: str
) -> None:
    prefix = Keys.for_table(table_name).prefix

    async def write(state: StreamState) -> None:
        await write_ts_layout(state.redis, prefix)

    on_redis(redis_url, table_name, write)
    refused = cli("verify")
    assert refused.exit_code == 5 and "adopt" in one_error_line(refused)
    assert cli("adopt", input="n\n").exit_code == 1

    result = cli("adopt", "--yes")
    assert result.exit_code == 0, result.stderr
    phases = [line.split(":")[0] for line in result.stderr.splitlines() if " events/s" in line]
    assert {"scanning keys", "importing", "replaying", "swap"} <= set(phases), result.stderr
    assert "4 requests, 1 batches, 2 timeline entries, 1 notify deliveries -> 8 events" in result.stdout
    assert f"dropped (points at nothing): {prefix}:idx:ext:gone" in result.stdout
    assert cli("verify").exit_code == 0

    async def read(state: StreamState) -> Any:
        r2 = await state.get("r2")
        token = await state.find_by_token("tok3")
        page = await state.list(status="pending")
        return r2, token, [r.id for r in page.items], [e.id for e in await state.timeline("r1")]

    r2, token, pending, entries = on_redis(redis_url, table_name, read)
    assert r2 is not None and r2.status == "resolved" and r2.context == {"tags": {}, "n": 3}
    assert token is not None and token.id == "r3" and token.actions[0].label == "Go"
    assert pending == ["r3", "r1"] and entries == ["e1", "e2"]
    audit = cli("audit", "r1", "--json")
    assert json.loads(audit.stdout.splitlines()[0])["event"]["type"] == "request.imported"

    again = cli("adopt", "--yes")
    assert again.exit_code == 5 and "already has history" in one_error_line(again)


def test_migrate_applies_then_reports_up_to_date(cli: Callable[..., Any]) -> None:
    steps = len(load_steps())  # every shipped step, however many later issues add
    status = cli("migrate", "--status")
    assert status.exit_code == 0
    assert status.stdout.count("pending ") == steps and "0001_records" in status.stdout
    applied = cli("migrate")
    assert applied.exit_code == 0 and applied.stdout.startswith(f"applied {steps} step(s): 0001_records")
    again = cli("migrate")
    assert again.stdout.startswith("up to date") and again.stdout.count("applied ") == steps


def test_migrate_reports_its_replay_and_whole_words(cli: Callable[..., Any], redis_url: str, table_name: str) -> None:
    from hitl_streams.history.projection import load_steps

    on_redis(redis_url, table_name, populate)
    keys = Keys.for_table(table_name)
    with SyncRedis.from_url(redis_url) as client:
        client.srem(keys.meta_migrations, "0007_request_audit_buckets")  # as if 0007 had just shipped
    applied = cli("migrate")
    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout.startswith("applied 1 step(s): 0007_request_audit_buckets")
    assert applied.stderr.splitlines()[-1].startswith("replaying: ")  # history replayed through the step

    status = cli("migrate", "--status")
    descriptions = {step.id: " ".join(step.description.split()) for step in load_steps()}
    lines = [line.split(None, 2) for line in status.stdout.splitlines()[1:]]
    assert [line[1] for line in lines] == list(descriptions)
    for _label, step_id, summary in lines:
        shown = summary.removesuffix(" ...")
        assert descriptions[step_id].startswith(shown), summary  # the description's own words, in order
        cut = len(shown)
        assert cut == len(descriptions[step_id]) or descriptions[step_id][cut] == " ", summary  # whole words


def test_errors_are_one_line_with_a_nonzero_exit(
    cli: Callable[..., Any], redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./.hitl-data here, whatever the repository's root holds
    runner = CliRunner()
    unreachable = runner.invoke(app, ["stats", "--redis-url", "redis://127.0.0.1:1/0"])
    assert unreachable.exit_code == 3
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in one_error_line(unreachable)

    secret = runner.invoke(app, ["verify", "--redis-url", "redis://u:hunter2@127.0.0.1:1/0"])
    assert secret.exit_code == 3 and "hunter2" not in one_error_line(secret)

    bad_url = runner.invoke(app, ["stats", "--redis-url", "http://localhost:6379"])
    assert bad_url.exit_code == 2 and "invalid Redis URL" in one_error_line(bad_url)

    bad_table = runner.invoke(app, ["stats", "--redis-url", redis_url, "--table", "no-dashes.x"])
    assert bad_table.exit_code == 2 and 'Invalid table name "no-dashes.x"' in one_error_line(bad_table)

    nothing = runner.invoke(app, ["stats"])
    assert nothing.exit_code == 2
    assert one_error_line(nothing) == (
        "hitl-streams: error: no Redis given: pass --redis-url redis://host:6379/0, set REDIS_URL, or run this "
        "where `hitl-streams serve` runs (it records its URL in .hitl-data/redis.url)"
    )
    monkeypatch.setenv("REDIS_URL", redis_url)
    table = f"t_{uuid.uuid4().hex[:16]}.env"
    assert runner.invoke(app, ["stats", "--table", table]).exit_code == 0  # REDIS_URL is the default

    unknown = cli("audit", "no-such-id")
    assert unknown.exit_code == 4 and 'Unknown request, batch, notify delivery or thread "no-such-id"' in (
        one_error_line(unknown)
    )
    assert cli("timeline", "no-such-thread").exit_code == 4
    bad_position = cli("export", "--since", "yesterday")
    assert bad_position.exit_code == 2 and "Invalid stream position" in one_error_line(bad_position)
    missing_file = cli("import", "/nonexistent/history.jsonl")
    assert missing_file.exit_code == 2 and "no such file" in one_error_line(missing_file)
    garbage = cli("import", "-", input="not json\n")
    assert garbage.exit_code == 2 and "line 1: not an exported event" in one_error_line(garbage)


def test_without_a_url_commands_use_the_one_serve_recorded_here(
    redis_url: str, table_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    runner = CliRunner()
    (tmp_path / ".hitl-data").mkdir()
    (tmp_path / ".hitl-data" / "redis.url").write_text(redis_url + "\n")  # as `serve` records it
    found = runner.invoke(app, ["stats", "--table", table_name])
    assert found.exit_code == 0, found.stderr
    assert found.stdout.startswith(f"prefix      {table_name.replace('.', ':')}\n")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # the environment comes first
    assert runner.invoke(app, ["stats", "--table", table_name]).exit_code == 3
    help_text = runner.invoke(app, ["stats", "--help"], env={"COLUMNS": "200"}).stdout
    assert "recordedin.hitl-data/redis.urlofthecurrentdirectory" in "".join(help_text.split())


def _entry_point() -> str:
    import shutil
    import sys
    from pathlib import Path

    found = Path(sys.executable).with_name("hitl-streams")
    return str(found) if found.exists() else (shutil.which("hitl-streams") or "hitl-streams")


def test_the_installed_command_streams_into_a_closed_pipe_and_fails_without_traceback(
    cli: Callable[..., Any], redis_url: str, table_name: str
) -> None:
    import subprocess

    on_redis(redis_url, table_name, populate)
    command = f"{_entry_point()} export --redis-url {redis_url} --table {table_name} | head -n 1"
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert piped.returncode == 0
    assert all(line.startswith("exporting: ") for line in piped.stderr.splitlines()), piped.stderr  # progress only
    assert json.loads(piped.stdout)["event"]["type"] == "request.created"

    down = subprocess.run(
        [_entry_point(), "verify", "--redis-url", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 3 and down.stdout == ""
    assert down.stderr.count("\n") == 1 and down.stderr.startswith("hitl-streams: error: cannot reach Redis")


def test_cluster_option_on_a_plain_redis_is_one_clear_line(redis_url: str) -> None:
    result = CliRunner().invoke(app, ["stats", "--cluster", "--redis-url", redis_url])
    assert result.exit_code == 3
    assert "Cluster mode is not enabled" in one_error_line(result)


def test_timeline_and_audit_read_and_print_page_by_page(
    cli: Callable[..., Any], redis_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fill(state: StreamState) -> None:
        for n in range(8):
            at = f"2026-11-25T17:03:{n:02d}.000Z"
            await state.append_timeline(TimelineEntry(id=f"e{n}", thread_id="long", message=f"m{n}", created_at=at))

    on_redis(redis_url, table_name, fill)
    monkeypatch.setattr(cli_ops, "_PAGE", 3)
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("timeline", "audit"):
        original = getattr(StreamState, name)

        async def spy(
            self: StreamState, subject: str, *, _name: str = name, _original: Any = original, **kw: Any
        ) -> Any:
            calls.append((_name, kw))
            return await _original(self, subject, **kw)

        monkeypatch.setattr(StreamState, name, spy)

    result = cli("timeline", "long")
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["TIME", "ENTRY", "MESSAGE", "DETAIL"] and [r[1] for r in rows[1:]] == [f"e{n}" for n in range(8)]
    entries = [json.loads(line) for line in cli("timeline", "long", "--json").stdout.splitlines()]
    assert [e["id"] for e in entries] == [f"e{n}" for n in range(8)]
    result = cli("audit", "long", "--json")
    assert result.exit_code == 0, result.stderr
    audited = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["event"]["entry"]["id"] for a in audited] == [f"e{n}" for n in range(8)]
    # Pages of 3, each asked for after the last one's cursor: never the whole history at once.
    timeline_calls = [kw for name, kw in calls if name == "timeline"]
    assert timeline_calls[:3] == [
        {"limit": 3, "cursor": None},
        {"limit": 3, "cursor": "e2"},
        {"limit": 3, "cursor": "e5"},
    ]
    audit_calls = [kw for name, kw in calls if name == "audit"]
    assert len(audit_calls) == 4 and all(kw["limit"] == 3 for kw in audit_calls)  # 3, 3, 2, then none
    assert audit_calls[1]["cursor"] == audited[2]["position"]


def test_schedule_shows_what_is_due_and_stats_count_the_due_index(
    cli: Callable[..., Any], redis_url: str, table_name: str
) -> None:
    async def scheduled(state: StreamState) -> tuple[str, str]:
        from hitl_streams import Hitl
        from hitl_streams.server.deadlines import DeadlineRunner
        from hitl_streams.server.wire import parse_create_request

        hitl = Hitl(state=state, secret="")

        def body(token: str, schedule: dict[str, Any]) -> Any:
            return parse_create_request(
                {"token": token, "message": "m", "actions": [{"id": "approve"}], "schedule": schedule}
            )

        late = await hitl.core.create_request(body("late", {"timeout": "1ms"}))
        waiting = await hitl.core.create_request(
            body(
                "waits",
                {"timeout": "1h", "reminders": [{"kind": "remind", "timing": {"kind": "delay", "after": "1ms"}}]},
            )
        )
        await asyncio.sleep(0.05)
        assert await DeadlineRunner(hitl.core, state).fire(waiting.id)  # the reminder fires; the deadline waits
        return late.id, waiting.id

    late, waiting = on_redis(redis_url, table_name, scheduled)
    shown = cli("schedule", waiting)
    assert shown.exit_code == 0, shown.stderr
    assert "next        the deadline at" in shown.stdout and "reminder #0" in shown.stdout
    data = json.loads(cli("schedule", waiting, "--json").stdout)
    assert data["next"]["fire"] == -1 and [f["outcome"] for f in data["fires"]] == ["reminded"]
    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["due"] == 2 and stats["oldestOverdue"]["id"] == late and stats["oldestOverdue"]["overdueMs"] > 0
    assert "schedules   2 with something due, oldest overdue" in cli("stats").stdout
    missing = cli("schedule", "nope")
    assert missing.exit_code != 0 and "No server-side schedule" in one_error_line(missing)
