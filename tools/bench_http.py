"""`bench.py --http`: load a running `hitl-streams serve` through a real socket, as users meet it.

A Python client on the same two cores cannot load a server fairly, so the load comes from `wrk` when it
is on PATH (Debian: `apt-get install wrk`); without it a small httpx client runs instead and every line
says so (`"generator": "httpx"`): its figures are a floor, not a measurement.

Phases (each `--http-seconds` long, `--http-connections` connections):
- `post_requests`: `POST requests` with a unique token per request (the create path); it runs five
  times as long as `--http-seconds`, so that the next phase has an id for each of its requests (a
  timeout runs about three times as fast as a create, on our server and on the TypeScript one);
- `post_timeout`: `POST requests/{id}/timeout` on requests the create phase made, each id once while they
  last (the resolve path: compare-and-set, history, resumption queue); `ids_reused` counts requests
  sent after the ids ran out (a repeated timeout is cheaper: the figure is then flattered).

Per phase one JSON line: requests/s, p50/p99 latency, non-2xx count, and the CPU the server process and
redis-server spent per request (from /proc and `INFO cpu`), so "where the time goes" is measured on both
sides of the socket. Without `--http-url` it starts `hitl-streams serve` itself on a free port, on the
benchmark's Redis, exactly as a user runs it (uvicorn on uvloop, one worker unless `--http-workers N`);
the server's CPU is that of its process and every process under it (the workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis

API = "/.well-known/hitl/v1"
SECRET = "bench-secret"
CREATE_FACTOR = 5
"""The create phase runs this many times `--http-seconds`: the timeout phase needs an id per request."""
BODY = (
    '{"token":"%s","message":"Deploy?","actions":[{"id":"approve"},{"id":"deny"}],'
    '"context":{"service":"api","version":"1.2.3","region":"eu-west-1"}}'
)

_CREATE_LUA = r"""
local counter, prefix, ids_file = 0, nil, nil
function setup(thread)
  thread:set("tid", tostring(math.random(1, 2^30)))
end
function init(args)
  prefix = args[1] .. "-" .. tid
  ids_file = io.open(args[2] .. "/ids-" .. tid, "w")
end
function request()
  counter = counter + 1
  local body = string.format('BODY', prefix .. "-" .. counter)
  return wrk.format("POST", "API/requests", {["content-type"] = "application/json",
    ["authorization"] = "Bearer SECRET"}, body)
end
function response(status, headers, body)
  local id = body:match('"id":"([^"]+)"')
  if id then ids_file:write(id, "\n") end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    'WRKJSON{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""

_TIMEOUT_LUA = r"""
local ids, n, i = {}, 0, 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("slot", #threads)
end
function init(args)
  local total = tonumber(args[2])
  local k = 0
  for line in io.lines(args[1]) do
    k = k + 1
    if (k - 1) % total == (slot - 1) then n = n + 1; ids[n] = line end
  end
end
function request()
  i = i + 1
  local id = ids[((i - 1) % n) + 1]
  return wrk.format("POST", "API/requests/" .. id .. "/timeout", {["content-type"] = "application/json",
    ["authorization"] = "Bearer SECRET"}, "{}")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    'WRKJSON{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _script(template: str) -> str:
    return template.replace("BODY", BODY).replace("API", API).replace("SECRET", SECRET)


def _process_cpu(pid: int) -> float:
    """CPU seconds of a process and of every process under it, live or reaped (utime + stime + cutime +
    cstime): `serve --workers N` serves from its children."""
    children: dict[int, list[int]] = {}
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
        todo.extend(children.get(current, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


def _redis_cpu(redis: SyncRedis) -> float:
    info = redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@contextlib.contextmanager
def served(redis_url: str, table: str, workers: int = 1) -> Iterator[tuple[str, int]]:
    """`hitl-streams serve` (with `workers` processes) on a free port; yields (base URL, pid)."""
    from hitl_streams.testing.redis_server import free_port

    port = free_port()
    env = {**os.environ, "HITL_SECRET": SECRET}
    executable = shutil.which("hitl-streams", path=str(Path(sys.executable).parent)) or shutil.which("hitl-streams")
    if executable is None:
        raise SystemExit("bench --http: no hitl-streams command (pip install -e '.[server]')")
    command = [
        executable, "serve",
        "--redis-url", redis_url, "--table", table, "--port", str(port), "--log-level", "warning",
        "--workers", str(workers),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + API + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench --http: hitl-streams serve did not start")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wrk(base: str, script: str, args: list[str], seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        threads = str(min(2, connections))
        done = subprocess.run(
            ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", "-s", handle.name, base, "--", *args],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    for line in (done.stderr + done.stdout).splitlines():
        if line.startswith("WRKJSON"):
            result: dict[str, Any] = json.loads(line[len("WRKJSON") :])
            return result
    raise SystemExit(f"bench --http: wrk printed no summary:\n{done.stdout}\n{done.stderr}")


def _httpx(
    base: str, paths: list[str], bodies: list[bytes], seconds: int, connections: int, ids: list[str] | None = None
) -> dict[str, Any]:
    """The fallback generator: `connections` tasks on one httpx client, for `seconds`; collects the `id`
    of each answer into `ids` when given."""
    import asyncio

    import httpx

    latencies: list[float] = []
    statuses: list[int] = []

    async def main() -> float:
        headers = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
            stop = time.monotonic() + seconds
            counter = iter(range(10**9))

            async def worker() -> None:
                while time.monotonic() < stop:
                    i = next(counter)
                    if i >= len(paths):
                        return
                    started = time.perf_counter()
                    answer = await client.post(paths[i], content=bodies[i])
                    latencies.append(time.perf_counter() - started)
                    statuses.append(answer.status_code)
                    if ids is not None and answer.status_code == 201:
                        ids.append(answer.json()["id"])

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return time.perf_counter() - began

    elapsed = asyncio.run(main())
    ordered = sorted(latencies) or [0.0]
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": int(ordered[len(ordered) // 2] * 1e6),
        "p99_us": int(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6),
        "non2xx": sum(1 for s in statuses if not 200 <= s < 300),
        "errors": 0,
    }


def run_http(
    redis_url: str, *, url: str | None, seconds: int, connections: int, workers: int = 1
) -> list[dict[str, Any]]:
    """Both phases against `url` (or a `serve` of our own); one result line per phase."""
    generator = "wrk" if shutil.which("wrk") else "httpx"
    redis = SyncRedis.from_url(redis_url)
    table = f"bench_http_{uuid.uuid4().hex[:8]}.human_requests"
    lines: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        if url is None:
            # Two arguments for one worker: harnesses that replace `served` (another server) take two.
            starting = served(redis_url, table, workers) if workers != 1 else served(redis_url, table)
            base, pid = stack.enter_context(starting)
        else:
            base, pid = url.rstrip("/"), 0
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hitl-bench-http-")))
        run = uuid.uuid4().hex[:8]
        phases: list[tuple[str, Any]] = [
            (
                "post_requests",
                # Five times as long as the other phase: the timeouts need an id each (they run ~3x faster).
                lambda: (
                    _wrk(base, _script(_CREATE_LUA), [run, str(workdir)], CREATE_FACTOR * seconds, connections)
                    if generator == "wrk"
                    else _httpx_create(base, run, workdir, seconds, connections)
                ),
            ),
            (
                "post_timeout",
                lambda: _timeouts(base, workdir, generator, seconds, connections),
            ),
        ]
        for name, phase in phases:
            server_before = _process_cpu(pid) if pid else 0.0
            redis_before = _redis_cpu(redis)
            result = phase()
            requests = max(1, int(result["requests"]))
            line = {
                "kind": "http",
                "name": name,
                "generator": generator,
                "connections": connections,
                "workers": workers if url is None else None,
                "seconds": round(result["duration_us"] / 1e6, 2),
                "requests": result["requests"],
                "rps": round(result["requests"] / max(result["duration_us"] / 1e6, 1e-9), 1),
                "p50_ms": round(result["p50_us"] / 1000, 2),
                "p99_ms": round(result["p99_us"] / 1000, 2),
                "non2xx": result["non2xx"],
                "socket_errors": result["errors"],
                "ids_reused": result.get("ids_reused", 0),
                "server_cpu_us_per_req": round((_process_cpu(pid) - server_before) / requests * 1e6, 1)
                if pid
                else None,
                "redis_cpu_us_per_req": round((_redis_cpu(redis) - redis_before) / requests * 1e6, 1),
            }
            lines.append(line)
    redis.close()
    return lines


def _httpx_create(base: str, run: str, workdir: Path, seconds: int, connections: int) -> dict[str, Any]:
    count = 200_000
    paths = [API + "/requests"] * count
    bodies = [(BODY % f"{run}-{i}").encode() for i in range(count)]
    ids: list[str] = []
    result = _httpx(base, paths, bodies, CREATE_FACTOR * seconds, connections, ids)
    (workdir / "ids-httpx").write_text("".join(f"{i}\n" for i in ids))
    return result


def _all_ids(workdir: Path) -> Path:
    ids = workdir / "all-ids"
    with ids.open("w") as out:
        for part in sorted(workdir.glob("ids-*")):
            out.write(part.read_text())
    return ids


def _timeouts(base: str, workdir: Path, generator: str, seconds: int, connections: int) -> dict[str, Any]:
    ids_file = _all_ids(workdir)
    ids = [line for line in ids_file.read_text().splitlines() if line]
    if not ids:
        raise SystemExit("bench --http: the create phase made no requests")
    if generator == "wrk":
        result = _wrk(base, _script(_TIMEOUT_LUA), [str(ids_file), str(min(2, connections))], seconds, connections)
        result["ids_reused"] = max(0, int(result["requests"]) - len(ids))  # a second timeout is cheaper
        return result
    paths = [f"{API}/requests/{i}/timeout" for i in ids]  # each once: the phase ends when they run out
    return _httpx(base, paths, [b"{}"] * len(paths), seconds, connections)
