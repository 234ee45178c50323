"""The README's "The reviewer side" runs as written: its Python snippet, its CLI session, and every HTTP
example (request sent to the ASGI app, documented response compared with the real one)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from hitl_streams import InMemoryState, StreamState
from hitl_streams.cli import app
from hitl_streams.server import Hitl
from hitl_streams.server.wire import parse_create_batch, parse_create_request, parse_remind

README = Path(__file__).resolve().parents[2] / "README.md"
ACTIONS = [
    {"id": "approve", "fields": {"note": {"kind": "text", "label": "Note", "default": "ok"}}},
    {"id": "deny", "fields": {"reason": {"kind": "select", "label": "Reason", "options": ["budget", "risk"]}}},
]
DOC_REQUEST = "cf787526-0c8e-4e97-b1ea-94f98b7541ef"
DOC_BATCH = "53bffbab-32d5-5868-9936-ef00ce6fcd1b"
_VOLATILE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:\d+)?|rv_[0-9a-f]{16}"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z|\d+-\d+|[A-Za-z0-9_\-]{40,}"
)


def section() -> str:
    text = README.read_text()
    start = text.index("## The reviewer side")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def normalized(value: Any) -> Any:
    if isinstance(value, str):
        return _VOLATILE.sub("*", value)
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def documented_in(doc: Any, real: Any, where: str = "$") -> None:
    """Every documented key is in the real reply with the same value (ids, times, positions and cursors
    aside); documented lists are a prefix of the real ones."""
    if isinstance(doc, dict):
        assert isinstance(real, dict), where
        for key, value in doc.items():
            assert key in real, f"{where}.{key} is documented but not in the reply"
            documented_in(value, real[key], f"{where}.{key}")
    elif isinstance(doc, list):
        assert isinstance(real, list) and len(doc) <= len(real), where
        for i, (mine, theirs) in enumerate(zip(doc, real, strict=False)):
            documented_in(mine, theirs, f"{where}[{i}]")
    else:
        assert normalized(doc) == normalized(real), f"{where}: documented {doc!r}, got {real!r}"


async def test_the_python_snippet(redis: Redis) -> None:
    [snippet] = [b for b in blocks("python") if "inbox=InboxSettings(" in b]
    scope: dict[str, Any] = {"redis": redis, "resolver": None}
    exec(snippet, scope)
    hitl = scope["hitl"]
    assert isinstance(hitl, Hitl) and isinstance(hitl.state, StreamState) and hitl.inbox_routes is not None
    assert hitl.inbox_settings is not None and hitl.inbox_settings.public_url == "https://hitl.example.com"


@pytest.mark.redis
def test_the_cli_session(redis_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HITL_PUBLIC_URL", raising=False)
    [console] = [b for b in blocks("console") if "$ hitl-streams reviewers add" in b]
    runner = CliRunner()
    outputs: list[tuple[list[str], str]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            words = shlex.split(line[2:].split("  #")[0])
            assert words[0] == "hitl-streams"
            outputs.append((words[1:], ""))
        elif outputs:
            outputs[-1] = (outputs[-1][0], outputs[-1][1] + line + "\n")
    reviewer_id = ""
    for args, expected in outputs:
        args = [reviewer_id if a.startswith("rv_") else a for a in args]
        result = runner.invoke(app, [*args, "--redis-url", redis_url, "--table", table_name])
        assert result.exit_code == 0, (args, result.output)
        if args[:2] == ["reviewers", "add"]:
            reviewer_id = re.search(r"\((rv_[0-9a-f]{16})\)", result.stdout).group(1)  # type: ignore[union-attr]
        for want, got in zip(expected.splitlines(), result.stdout.splitlines(), strict=False):
            pattern = re.escape(want).replace("…", r"\S+").replace("rv_8632870962fb90ad", "rv_[0-9a-f]{16}")
            assert re.fullmatch(pattern, got), (want, got)


async def test_every_http_example() -> None:
    hitl = Hitl(state=InMemoryState(), inbox=True)
    reviewers = hitl.state.reviewers  # type: ignore[attr-defined]
    await reviewers.add("ada", namespaces=["billing", "ops"], email="ada@example.com")
    token = (await reviewers.issue("ada", "token")).token
    created = await hitl.core.create_request(
        parse_create_request(
            {
                "token": "wf-1",
                "message": "Refund 40 EUR to order 1234?",
                "actions": ACTIONS,
                "namespace": "billing",
                "context": {"order": 1234},
            }
        )
    )
    await asyncio.sleep(0.005)  # the batch is newer: the list example shows its last item first
    batch = await hitl.core.create_batch(
        parse_create_batch(
            {
                "items": [{"token": "wf-2", "message": "Invoice 1"}, {"token": "wf-3", "message": "Invoice 2"}],
                "actions": ACTIONS,
                "message": "Write off?",
                "namespace": "billing",
            }
        )
    )
    await hitl.core.remind(created.id, parse_remind({"message": "Still waiting on the refund"}))
    examples = [b for b in blocks("http") if re.match(r"(GET|POST) /inbox/api/", b)]
    assert len(examples) == 12
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        for example in examples:
            example = example.replace(DOC_REQUEST, created.id).replace(DOC_BATCH, batch.batch_id)
            request, reply = example.strip().rsplit("\n\n", 1)
            head, _, body = request.partition("\n\n")
            request_line, *header_lines = head.splitlines()
            method, path = request_line.split(" ", 1)
            headers = dict(line.split(": ", 1) for line in header_lines)
            if headers.get("Authorization") == "Bearer hitl_rt_…":
                headers["Authorization"] = f"Bearer {token}"
            status, documented = reply.split("\n", 1)
            response = await client.request(method, path, headers=headers, content=body.encode() if body else None)
            assert response.status_code == int(status), (request_line, response.text)
            documented_in(json.loads(documented), response.json())
