"""The README's examples run as written. (The reviewer's Python example of the loop runs against a real
`serve` in tests/server/test_serve.py; this file runs the webhook receiver.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hitl_streams import HitlError, Resolved, Reviewer
from hitl_streams.server import WebhookResolver
from hitl_streams.testing.redis_server import free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_python(marker: str) -> str:
    """The README's ```python block that contains `marker`."""
    blocks = [part.split("```", 1)[0] for part in README.read_text().split("```python\n")[1:]]
    [block] = [block for block in blocks if marker in block]
    return block


def test_the_webhook_receiver_resumes_signed_calls_and_refuses_the_rest(tmp_path: Path) -> None:
    code = readme_python("# receiver.py")
    assert 'HTTPServer(("127.0.0.1", 9000), Resume)' in code
    port = free_port()  # the README's 9000 may be taken on a shared machine: the only change
    (tmp_path / "receiver.py").write_text(code.replace("9000", str(port)))
    env = {**os.environ, "HITL_WEBHOOK_SECRET": "webhook-secret"}
    receiver = subprocess.Popen(
        [sys.executable, "receiver.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}/resume"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or receiver.poll() is not None:
                    raise
                time.sleep(0.05)
        result = Resolved(id="r1", action_id="approve", external_ref="r1", feedbacks={}, by=Reviewer(name="Ada"))
        asyncio.run(WebhookResolver(url, "webhook-secret", timeout=30).resolve("wf-1", result))  # 2xx, or it raises
        with pytest.raises(HitlError, match="answered 401"):  # signed with another secret
            asyncio.run(WebhookResolver(url, "not-the-secret", timeout=30).resolve("wf-2", result))
        unsigned = httpx.post(url, content=b'{"token":"wf-3"}', timeout=30)
        assert unsigned.status_code == 401
    finally:
        receiver.terminate()
        stdout, _ = receiver.communicate(timeout=30)
    assert stdout.decode().splitlines() == [
        "resume wf-1 {'type': 'RESOLVED', 'id': 'r1', 'actionId': 'approve', 'externalRef': 'r1', "
        "'feedbacks': {}, 'by': {'name': 'Ada'}}"
    ]
