"""The README's "### Slack" and "### E-mail" run as written: the app manifest names our interactivity
route and scopes, the shell sessions parse into the options they claim, the Python snippet builds the
channels, and `reviewers add --slack-user` stores the Slack user id."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from redis.asyncio import Redis
from typer.testing import CliRunner

from hitl_streams import StreamState
from hitl_streams.channels import EmailChannel, SlackChannel
from hitl_streams.cli import app
from hitl_streams.server import Hitl
from hitl_streams.server import serve as serve_module

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("### Slack\n")
    end = text.index("\n## ", start)
    return text[start:end]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def commands(block: str) -> tuple[dict[str, str], list[list[str]]]:
    """The `export`ed variables and the `hitl-streams` command lines of a shell block."""
    env: dict[str, str] = {}
    lines: list[list[str]] = []
    for line in block.strip().splitlines():
        words = shlex.split(line)
        if words[0] == "export":
            env.update(w.split("=", 1) for w in words[1:])  # type: ignore[misc]
        else:
            assert words[0] == "hitl-streams", line
            lines.append(words[1:])
    return env, lines


async def test_the_manifest_names_the_scopes_and_our_interactivity_route() -> None:
    [manifest] = blocks("yaml")
    data = yaml.safe_load(manifest)
    assert set(data["oauth_config"]["scopes"]["bot"]) == {"chat:write", "im:write", "users:read", "users:read.email"}
    url = data["settings"]["interactivity"]["request_url"]
    assert data["settings"]["interactivity"]["is_enabled"] is True
    path = url.removeprefix("https://hitl.example.com")
    hitl = Hitl(adapters=[SlackChannel(bot_token="xoxb-1", signing_secret="s")], secret="")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
        assert (await http.post(path, content=b"payload=%7B%7D")).status_code == 401  # unsigned: refused
        assert (await http.post("/channels/slack/elsewhere")).status_code == 404


def test_the_shell_sessions_configure_what_they_say(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, table_name: str
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(serve_module, "serve", lambda options, echo: seen.append(options))
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "HITL_SMTP_URL", "HITL_PUBLIC_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    slack_block, mail_block = blocks("sh")
    runner = CliRunner()
    env, (serve, add) = commands(slack_block)
    assert runner.invoke(app, serve, env=env).exit_code == 0
    added = runner.invoke(app, [*add, "--redis-url", redis_url, "--table", table_name])
    assert added.exit_code == 0, added.output
    env, (serve_mail,) = commands(mail_block)
    assert runner.invoke(app, serve_mail, env=env).exit_code == 0
    slack_options, mail_options = seen
    assert (slack_options.slack_bot_token, slack_options.slack_signing_secret) == ("xoxb-…", "…")
    assert slack_options.slack_channel == "C0123ABCD" and slack_options.inbox
    assert mail_options.smtp_url == "smtp://hitl%40example.com:app-password@smtp.example.com:587?starttls=1"
    assert mail_options.mail_from == "Approvals <hitl@example.com>"
    assert mail_options.public_url == "https://hitl.example.com" and mail_options.inbox

    async def stored() -> Any:
        client = Redis.from_url(redis_url)
        try:
            return await StreamState(client, table_name=table_name).reviewers.get("ana")
        finally:
            await client.aclose()

    reviewer = asyncio.run(stored())
    assert reviewer.slack_user == "U0123ABCD" and reviewer.email == "ana@example.com"


async def test_the_python_snippet_builds_the_slack_channel(
    redis: Redis, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    [snippet] = blocks("python")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    scope: dict[str, Any] = {"redis": redis, "resolver": None}
    exec(snippet, scope)
    hitl = scope["hitl"]
    assert isinstance(hitl, Hitl) and [a.id for a in hitl.adapters] == ["slack", "inbox"]
    assert hitl.adapters[0].default_channel == "C0123ABCD"


def test_the_email_paragraph_names_a_real_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_SECRET", "s3cret")
    call = re.search(r"`(EmailChannel\(.*?\))`", section(), flags=re.S)
    assert call is not None
    source = call.group(1).replace("...", "'smtp://127.0.0.1:25'", 1).replace("...", "'hitl@example.com'", 1)
    channel = eval(source, {"EmailChannel": EmailChannel, "os": __import__("os")} | {"__builtins__": {}}, {})
    assert channel.public_url == "https://hitl.example.com"
