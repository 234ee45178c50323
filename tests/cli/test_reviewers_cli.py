"""`hitl-streams reviewers add|list|revoke|link|token`, and `serve --inbox` end to end (a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from typer.testing import CliRunner

from hitl_streams import StreamState
from hitl_streams.cli import app

pytestmark = pytest.mark.redis

T = TypeVar("T")
LINK = re.compile(r"(\S*)/inbox/login\?token=(hitl_sl_[A-Za-z0-9_\-]{43})")


@pytest.fixture
def cli(redis_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run `hitl-streams reviewers ARGS --redis-url ... --table ...`; returns the click Result."""
    for name in ("REDIS_URL", "HITL_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["reviewers", *args, "--redis-url", redis_url, "--table", table_name])

    yield invoke
    client = SyncRedis.from_url(redis_url)
    names = list(client.scan_iter(match=f"*{table_name.split('.')[0]}*", count=1000))
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


def error_line(result: Any) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hitl-streams: error: "), result.stderr
    return str(lines[0])


def test_add_prints_a_one_time_link(cli: Callable[..., Any], redis_url: str, table_name: str) -> None:
    result = cli("add", "ada", "--namespaces", "billing,ops", "--email", "ada@example.com")
    assert result.exit_code == 0, result.output
    assert "added reviewer ada (rv_" in result.stdout and "billing, ops" in result.stdout
    match = LINK.search(result.stdout)
    assert match is not None and match.group(1) == ""  # no public URL known: the path
    token = match.group(2)
    first = on_redis(redis_url, table_name, lambda state: state.reviewers.sign_in(token))
    second = on_redis(redis_url, table_name, lambda state: state.reviewers.sign_in(token))
    assert first is not None and first[0].name == "ada" and second is None


def test_links_are_absolute_with_a_public_url(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("add", "ada", "-n", "billing", "--public-url", "https://hitl.example.com/").exit_code == 0
    result = cli("link", "ada", "--public-url", "https://hitl.example.com/")
    assert result.exit_code == 0
    assert re.fullmatch(r"https://hitl\.example\.com/inbox/login\?token=hitl_sl_\S{43}\n", result.stdout)
    monkeypatch.setenv("HITL_PUBLIC_URL", "https://env.example.com")
    assert cli("link", "ada").stdout.startswith("https://env.example.com/inbox/login?token=hitl_sl_")


def test_list_revoke_token_and_exit_codes(cli: Callable[..., Any], redis_url: str, table_name: str) -> None:
    assert cli("add", "ada", "-n", "billing").exit_code == 0
    assert cli("add", "bob", "-n", "*", "--email", "bob@example.com").exit_code == 0
    taken = cli("add", "ada", "-n", "ops")
    assert taken.exit_code == 2 and 'Reviewer "ada" already exists' in error_line(taken)
    bad = cli("add", "eve", "-n", "no spaces")
    assert bad.exit_code == 2 and "Invalid namespace" in error_line(bad)
    token = cli("token", "ada")
    assert token.exit_code == 0 and re.fullmatch(r"hitl_rt_\S{43}\n", token.stdout)
    verified = on_redis(redis_url, table_name, lambda s: s.reviewers.verify(token.stdout.strip(), ("token",)))
    assert verified is not None and verified.name == "ada"
    rotated = cli("token", "ada")
    assert on_redis(redis_url, table_name, lambda s: s.reviewers.verify(token.stdout.strip(), ("token",))) is None
    token = rotated
    table = cli("list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "EMAIL", "NAMESPACES", "ADDED", "STATUS"]
    assert lines[1].split()[0] == "ada" and lines[1].split()[-1] == "active"
    assert lines[2].split()[2:4] == ["bob@example.com", "*"]
    revoked = cli("revoke", "ada")
    assert revoked.exit_code == 0 and revoked.stdout.startswith("revoked ada (rv_")
    assert on_redis(redis_url, table_name, lambda s: s.reviewers.verify(token.stdout.strip(), ("token",))) is None
    again = cli("token", "ada")
    assert again.exit_code == 2 and 'Reviewer "ada" is revoked' in error_line(again)
    rows = [json.loads(line) for line in cli("list", "--json").stdout.splitlines()]
    assert [(r["name"], "revokedAt" in r) for r in rows] == [("ada", True), ("bob", False)]
    unknown = cli("revoke", "nobody")
    assert unknown.exit_code == 4 and 'Unknown reviewer "nobody"' in error_line(unknown)
    assert cli("link", "nobody").exit_code == 4


def test_the_audit_trail_says_who_granted_what(cli: Callable[..., Any], redis_url: str, table_name: str) -> None:
    assert cli("add", "ada", "-n", "billing").exit_code == 0
    assert cli("revoke", "ada").exit_code == 0
    reviewer = on_redis(redis_url, table_name, lambda s: s.reviewers.get("ada"))
    assert reviewer is not None
    runner = CliRunner()
    result = runner.invoke(app, ["audit", reviewer.id, "--json", "--redis-url", redis_url, "--table", table_name])
    assert result.exit_code == 0, result.output
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert [e["type"] for e in events] == ["reviewer.added", "reviewer.credential_issued", "reviewer.revoked"]
    assert events[0]["actor"]["id"] == "cli" and events[0]["reviewer"]["namespaces"] == ["billing"]
    assert "hash" in events[1] and "token" not in json.dumps(events[1]).replace("credential", "")
    table = runner.invoke(app, ["audit", reviewer.id, "--redis-url", redis_url, "--table", table_name])
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["TIME", "EVENT", "ACTOR", "DETAILS"]
    assert rows[1].split()[1:] == ["reviewer.added", events[0]["actor"]["name"], "name=ada", "namespaces=billing"]
    assert rows[2].split()[1] == "reviewer.credential_issued" and rows[2].split()[3].startswith("link=")
    assert rows[3].split()[1:4:2] == ["reviewer.revoked", "name=ada"]


def test_no_redis_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(app, ["reviewers", "list"])
    assert result.exit_code == 2 and "no Redis given" in result.stderr


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["reviewers", "--help"])
    assert result.exit_code == 0
    for command in ("add", "list", "revoke", "link", "token"):
        assert command in result.stdout


def test_serve_with_the_inbox_end_to_end(tmp_path: Path, redis_url: str, table_name: str) -> None:
    """The README's reviewer walk-through: serve --inbox, add a reviewer, list and decide with a token."""
    from tests.server.support import APPROVE_DENY, free_port

    hitl_streams = str(Path(sys.executable).parent / "hitl-streams")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_SECRET", "REDIS_URL", "HITL_PUBLIC_URL")}
    env["REDIS_URL"] = redis_url
    where = ["--table", table_name]
    process = subprocess.Popen(
        [hitl_streams, "serve", "--inbox", "--port", str(port), "--public-url", f"http://127.0.0.1:{port}", *where],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("serve did not come up")
        added = subprocess.run(
            [hitl_streams, "reviewers", "add", "ada", "--namespaces", "billing", "--public-url", base, *where],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"{base}/inbox/login?token=hitl_sl_" in added.stdout
        token = subprocess.run(
            [hitl_streams, "reviewers", "token", "ada", *where], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        body = {"token": "wf-1", "message": "Refund 40 EUR?", "actions": APPROVE_DENY, "namespace": "billing"}
        created = httpx.post(f"{base}/.well-known/hitl/v1/requests", json=body, timeout=5).json()
        auth = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/inbox/api/requests", timeout=5).status_code == 401
        listed = httpx.get(f"{base}/inbox/api/requests?status=pending", headers=auth, timeout=5).json()
        assert [item["id"] for item in listed["items"]] == [created["id"]]
        decided = httpx.post(
            f"{base}/inbox/api/requests/{created['id']}/resolve",
            headers=auth,
            json={"actionId": "deny", "feedbacks": {"reason": "over budget"}},
            timeout=5,
        )
        assert decided.status_code == 200 and decided.json()["result"]["by"]["name"] == "ada"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:  # a failed test: Ctrl-C first, so serve stops the Valkey it started
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode == 0, output
    assert f"inbox:    {base}/inbox/" in output
    assert f"hitl-streams reviewers add NAME --namespaces a,b --redis-url {redis_url} --table {table_name}" in output
