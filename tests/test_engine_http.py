"""The HTTP call behind the engines' `request` steps: URL joining, the worker's secret, what is retried."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from engine_support import served_app

from hitl_streams._engine_http import RetryableResponseError, read_setting, resolve_url, send_hitl_request
from hitl_streams.errors import HitlError
from tests.server.support import read_body


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the status named by the last path segment and echoes the request's headers."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    status = int(scope["path"].rsplit("/", 1)[1])
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    answer = json.dumps({"headers": headers, "body": body.decode(), "method": scope["method"]}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


def request(url: str, **headers: str) -> dict[str, Any]:
    return {"url": url, "method": "POST", "headers": {"content-type": "application/json", **headers}, "body": "{}"}


async def test_a_relative_url_goes_to_the_workers_base_url_with_its_secret() -> None:
    async with served_app(echo) as base:
        answer = await send_hitl_request(request("/x/201"), base_url=base + "/", secret="s3", request_timeout=10)
    assert (answer["status"], answer["ok"]) == (201, True)
    seen = json.loads(answer["body"])
    assert seen["headers"]["authorization"] == "Bearer s3"
    assert (seen["method"], seen["body"]) == ("POST", "{}")


async def test_the_workflows_own_authorization_header_is_kept() -> None:
    async with served_app(echo) as base:
        answer = await send_hitl_request(
            request(f"{base}/x/200", authorization="Bearer mine"), base_url=None, secret="worker", request_timeout=10
        )
    assert json.loads(answer["body"])["headers"]["authorization"] == "Bearer mine"


async def test_client_errors_are_answers_and_server_errors_are_retried() -> None:
    async with served_app(echo) as base:
        answer = await send_hitl_request(request(f"{base}/x/409"), base_url=None, secret=None, request_timeout=10)
        assert (answer["status"], answer["ok"]) == (409, False)
        assert "authorization" not in json.loads(answer["body"])["headers"]
        for status in (408, 429, 500, 503):
            with pytest.raises(RetryableResponseError, match=f"answered {status}"):
                await send_hitl_request(request(f"{base}/x/{status}"), base_url=None, secret=None, request_timeout=10)


def test_a_relative_url_without_a_base_says_what_to_set() -> None:
    with pytest.raises(HitlError, match="set HITL_URL on the worker"):
        resolve_url("/.well-known/hitl/v1/requests", None)
    assert resolve_url("http://h/a", "http://other") == "http://h/a"


def test_settings_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_SECRET", "from-env")
    assert read_setting(None, "HITL_SECRET") == "from-env"
    assert read_setting("given", "HITL_SECRET") == "given"
    assert read_setting(lambda: "late", "HITL_SECRET") == "late"
    assert read_setting(lambda: None, "HITL_SECRET") is None
    monkeypatch.delenv("HITL_SECRET")
    assert read_setting(None, "HITL_SECRET") is None


@pytest.mark.parametrize(
    ("module", "extra", "package"), [("temporal", "temporal", "temporalio"), ("dbos", "dbos", "dbos")]
)
def test_a_missing_extra_is_an_actionable_import_error(module: str, extra: str, package: str) -> None:
    program = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        f"importlib.util.find_spec = lambda name, *a: None if name == {package!r} else real(name, *a)\n"
        "try:\n"
        f"    import hitl_streams.{module}\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    assert f"pip install 'hitl-streams[{extra}]'" in done.stdout
