"""The README's Reliability receiver, run as written: it resumes a decision once however often it is
delivered, drops a replayed capture, and refuses a bad signature."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hitl_streams.results import Resolved
from hitl_streams.server import WebhookResolver

from .support import read_body, served

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "webhook-secret"


def _receiver_snippet() -> str:
    section = README.read_text().split("## Reliability\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    [snippet] = [block for block in blocks if "def handle_resume" in block]
    return snippet


async def test_the_readme_receiver_resumes_once_and_drops_replays() -> None:
    resumed: list[tuple[str, Any]] = []
    namespace: dict[str, Any] = {
        "SECRET": SECRET,
        "resume_workflow": lambda token, result: resumed.append((token, result)),
    }
    exec(compile(_receiver_snippet(), "README.md", "exec"), namespace)
    handle_resume = namespace["handle_resume"]
    captured: list[tuple[dict[str, str], bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        captured.append((headers, body))
        await send({"type": "http.response.start", "status": handle_resume(headers, body), "headers": []})
        await send({"type": "http.response.body", "body": b""})

    result = Resolved(id="r1", action_id="approve", external_ref="", feedbacks={})
    async with served(app) as base:
        resolver = WebhookResolver(f"{base}/resume", SECRET)
        try:
            await resolver.resolve("tok", result, idempotency_key="r1:1700000000000-0")
            await resolver.resolve("tok", result, idempotency_key="r1:1700000000000-0")  # a redelivery
        finally:
            await resolver.aclose()
    assert [token for token, _ in resumed] == ["tok"]

    headers, body = captured[0]
    assert handle_resume(headers, body) == 200  # a replayed capture, within the window: no second resume
    assert len(resumed) == 1
    forged = {**headers, "x-hitl-signature": "v1=" + "0" * 64}
    assert handle_resume(forged, body) == 401
