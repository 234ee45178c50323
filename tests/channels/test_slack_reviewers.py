"""Slack users mapped to reviewers by their Slack user id (`reviewers add --slack-user`), stored on the
reviewer in history, so every replica sees it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hitl_streams import State
from hitl_streams.cli import app
from hitl_streams.errors import ValidationError
from hitl_streams.results import Resolved
from hitl_streams.reviewers import ReviewerDirectory
from hitl_streams.server import Hitl
from tests.cli.test_reviewers_cli import cli, error_line, on_redis  # noqa: F401 (the cli fixture)

from .fake_slack import FakeSlack, click
from .test_slack import create, fake, make_hitl, post  # noqa: F401 (the fake fixture)


@pytest.fixture
async def hitl(state: State, fake: tuple[FakeSlack, str]) -> AsyncIterator[Hitl]:  # noqa: F811
    server = make_hitl(state, fake[1])
    async with server:
        yield server


def directory(hitl: Hitl) -> ReviewerDirectory:
    found = hitl.state.reviewers  # type: ignore[attr-defined]
    assert isinstance(found, ReviewerDirectory)
    return found


async def test_a_slack_user_id_decides_as_its_reviewer_without_an_email_lookup(
    hitl: Hitl,
    fake: tuple[FakeSlack, str],  # noqa: F811
) -> None:
    slack, _ = fake
    await directory(hitl).add("sam", namespaces=["billing"], slack_user="USAM1")
    request_id = await create(hitl)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://hitl.test") as http:
        assert (await post(http, click("USAM1", request_id, "approve"))).status_code == 200
    record = await hitl.state.get(request_id)
    assert record is not None and isinstance(record.result, Resolved)
    assert record.result.by is not None and record.result.by.name == "sam"
    assert slack.posted("users.info") == []


async def test_an_email_does_not_override_a_pinned_slack_user(
    hitl: Hitl,
    fake: tuple[FakeSlack, str],  # noqa: F811
) -> None:
    slack, _ = fake
    # UANA's Slack profile says ana@example.com, but the reviewer ana is pinned to another account.
    await directory(hitl).add("ana", namespaces=["billing"], email="ana@example.com", slack_user="UOTHER")
    request_id = await create(hitl)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://hitl.test") as http:
        await post(http, click("UANA", request_id, "approve"))
    assert (await hitl.state.get(request_id)).status == "pending"  # type: ignore[union-attr]
    assert [e["user"] for e in slack.posted("chat.postEphemeral")] == ["UANA"]


async def test_an_invalid_slack_user_id_is_refused(state: State) -> None:
    with pytest.raises(ValidationError, match="Invalid Slack user id"):
        await state.reviewers.add("x", namespaces=["a"], slack_user="u-lower")  # type: ignore[attr-defined]


@pytest.mark.redis
def test_reviewers_add_slack_user_is_stored_for_every_replica(
    cli: Callable[..., Any],  # noqa: F811
    redis_url: str,
    table_name: str,
) -> None:
    added = cli("add", "ana", "--namespaces", "billing", "--slack-user", "U0ANA")
    assert added.exit_code == 0, added.stderr
    stored = on_redis(redis_url, table_name, lambda s: s.reviewers.get("ana"))
    assert stored is not None and stored.slack_user == "U0ANA"
    listed = cli("list", "--json")
    assert json.loads(listed.stdout.splitlines()[0])["slackUser"] == "U0ANA"
    stored_id = stored.id
    audit = CliRunner().invoke(app, ["audit", stored_id, "--redis-url", redis_url, "--table", table_name])
    assert "name=ana slack=U0ANA namespaces=billing" in audit.stdout
    bad = cli("add", "bob", "--namespaces", "billing", "--slack-user", "not-an-id")
    assert bad.exit_code == 2
    assert "Invalid Slack user id" in error_line(bad)
