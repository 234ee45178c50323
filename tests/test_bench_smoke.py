"""`tools/bench.py --quick` runs end to end and prints every figure as one parseable JSON line.

No timing assertions: this only proves the benchmark works (CI runs it once).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "tools" / "bench.py"
OPS = (
    "create",
    "resolve",
    "resolve_uncached",
    "get",
    "find_by_token",
    "list_walk",
    "count",
    "append_timeline",
    "timeline",
)
HTTP = ("http_create", "http_resolve")


@pytest.mark.redis
def test_quick_run_prints_every_figure(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--n", "120", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    seen = {(line["kind"], line["name"], line.get("concurrency")) for line in lines}

    for c in (1, 64):
        assert ("limit", "evalsha_noop", c) in seen
        for name in OPS:
            assert ("op", name, c) in seen, name
        for name in HTTP:  # measured once the server exists, a clear "skipped" line until then
            assert ("op", name, c) in seen or ("skipped", name, None) in seen, name

    for line in lines:
        if line["kind"] == "op":
            assert line["n"] > 0
            for key in ("ops_per_s", "p50_ms", "p99_ms", "vs_limit"):
                assert isinstance(line[key], (int, float)) and line[key] >= 0, (line, key)
        elif line["kind"] == "limit":
            assert line["ops_per_s"] > 0
        elif line["kind"] == "skipped":
            assert line["reason"]

    memory = [line for line in lines if line["kind"] == "memory"]
    assert len(memory) == 2 and all(m["name"] == "bytes_per_request" and m["note"] for m in memory)
    assert all(isinstance(m["value"], (int, float)) for m in memory)
    by_key = {line["name"]: line for line in lines if line["kind"] == "memory_key"}
    for name in ("{P}:events", "{P}:req:{id}", "{P}:idx:token:{token}", "{P}:audits:{bucket}", "{P}:ops:{second}"):
        assert by_key[name]["bytes_per_request"] > 0 and by_key[name]["keys"] > 0, name
    events = {line["name"] for line in lines if line["kind"] == "event_bytes"}
    assert events == {"request.created", "request.resolved"}
    replay = [line for line in lines if line["kind"] == "replay"]
    assert len(replay) == 1 and replay[0]["name"] == "rebuild" and replay[0]["events_per_s"] > 0
    assert "operation" in done.stderr  # the human-readable table with the reference figures


@pytest.mark.redis
@pytest.mark.slow
def test_http_mode_loads_a_real_serve_through_a_socket(redis_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--http",
            "--http-seconds",
            "1",
            "--http-connections",
            "4",
            "--redis-url",
            redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [line["name"] for line in lines] == ["post_requests", "post_timeout"]
    for line in lines:
        assert line["kind"] == "http" and line["generator"] in ("wrk", "httpx")
        assert line["requests"] > 0 and line["non2xx"] == 0 and line["rps"] > 0
        assert line["server_cpu_us_per_req"] > 0 and line["redis_cpu_us_per_req"] > 0
