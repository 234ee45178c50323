#!/usr/bin/env python3
"""Benchmark of `StreamState` (and the HTTP path) against a real Redis (SPEC §10, issue 6).

Starts its own `redis-server` (from PATH, on a free loopback port, `--save "" --appendonly no`; never
6379) unless `--redis-url` is given. Every phase runs on a fresh key prefix; every timing is repeated
(`--repeat`, default 3) and the median run is reported. Output, on stdout, is one JSON object per line:

  {"kind": "op", "name": NAME, "concurrency": C, "n": N, "ops_per_s": X, "p50_ms": X, "p99_ms": X,
   "vs_limit": X}
  {"kind": "limit", "name": "evalsha_noop", "concurrency": C, "ops_per_s": X}
  {"kind": "memory", "name": "bytes_per_request", "value": X, "note": "..."}
  {"kind": "memory_key", "name": "{P}:req:{id}", "bytes_per_request": X, "keys": N, "encoding": "raw"}
  {"kind": "event_bytes", "name": "request.created", "json_bytes": X, "events": N}
  {"kind": "replay", "name": "rebuild", "events_per_s": X, ...}
  {"kind": "skipped", "name": NAME, "reason": "..."}

`vs_limit` is the op's ops/s over the `evalsha_noop` limit at the same concurrency (one redis-py EVALSHA
of a trivial script per operation, same client settings, same run). A human-readable table with the
TypeScript `IoredisState` reference figures goes to stderr. `resolve` resolves requests the same state
created (it knows their bytes: one round trip); `resolve_uncached` does it as a replica that never saw them.

    python tools/bench.py                 # N=20000, concurrency 1 and 64
    python tools/bench.py --quick         # small N, one repetition: a smoke run
    python tools/bench.py --only create,resolve,get --concurrency 64
    python tools/bench.py --loop uvloop   # on uvloop, as `hitl-streams serve` runs when it is installed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

import hitl_streams
from hitl_streams import Action, NewHumanRequest, Resolved, StreamState, TimelineEntry
from hitl_streams.testing.redis_server import free_port, ping

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
    "http_create",
    "http_resolve",
)
OTHER = ("evalsha_noop", "memory", "rebuild")
REQUEST_OPS = frozenset({"create", "resolve", "resolve_uncached", "get", "find_by_token", "list_walk", "count"})
"""The operations `bench_requests` measures, on requests it creates first."""
PAGE = 50
THREAD_LEN = 10

# TypeScript IoredisState (Node 20, ioredis) on this class of machine, quiet, N=20000, c=64 (issue 6);
# the HTTP figures are at c=32. Under load the same machine gave about half of each.
REFERENCE: dict[str, float] = {
    "create": 24_000,
    "resolve": 47_900,
    "resolve_uncached": 47_900,
    "get": 95_500,
    "find_by_token": 56_300,
    "count": 105_000,
    "list_walk": 4_700,
    "append_timeline": 44_700,
    "timeline": 31_500,
    "http_create": 7_300,
    "http_resolve": 31_000,
}
REFERENCE_BYTES_PER_REQUEST = 1_566
SIDE_BY_SIDE_BYTES_PER_REQUEST = 1_373
"""The reference's memory phase (same payload, N=20000) on the same redis-server 7.0.15 as ours, flushed
before each run (README, Performance): SPEC's 1,566 was measured another way."""
TARGET_EVENTS_PER_S = 100_000


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the server -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """A private redis-server on a free loopback port, no persistence; stopped on exit."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise SystemExit("bench: no redis-server on PATH; install one or pass --redis-url")
    workdir = Path(tempfile.mkdtemp(prefix="hitl-bench-redis-"))
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--logfile", str(workdir / "server.log")]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not ping("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: {binary} did not start on port {port}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


# --- timing ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    n: int
    seconds: float
    latencies: list[float]
    client_cpu: float = 0.0
    """CPU seconds this process used during the run (what a busy machine cannot steal)."""
    server_cpu: float = 0.0
    """CPU seconds the Redis server used during the run (INFO cpu)."""

    @property
    def ops_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def timed(n: int, concurrency: int, op: Callable[[int], Awaitable[Any]]) -> Run:
    """Run `op(0..n-1)` from `concurrency` tasks sharing the work; each op's latency is recorded."""
    latencies: list[float] = [0.0] * n
    next_index = 0
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal next_index
        while next_index < n:
            i = next_index
            next_index += 1
            t0 = clock()
            await op(i)
            latencies[i] = clock() - t0

    gc.collect()
    server_before = await server_cpu()
    cpu_before = time.process_time()
    started = clock()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    seconds = clock() - started
    client_cpu = time.process_time() - cpu_before
    return Run(n, seconds, latencies, client_cpu, await server_cpu() - server_before)


SERVER: list[Any] = []
"""The client `server_cpu` asks (set by `bench`)."""


async def server_cpu() -> float:
    if not SERVER:
        return 0.0
    info = await SERVER[0].info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Results:
    runs: dict[tuple[str, int], list[Run]] = field(default_factory=dict)
    limits: dict[int, float] = field(default_factory=dict)
    memory: list[tuple[float, str]] = field(default_factory=list)
    memory_keys: list[dict[str, Any]] = field(default_factory=list)
    replay: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, concurrency: int, run: Run) -> None:
        self.runs.setdefault((name, concurrency), []).append(run)

    def median(self, name: str, concurrency: int) -> Run | None:
        runs = sorted(self.runs.get((name, concurrency), []), key=lambda r: r.ops_per_s)
        return runs[len(runs) // 2] if runs else None


# --- workload -------------------------------------------------------------------------------------------
ACTIONS = [Action(id="approve"), Action(id="deny")]


def new_request(i: int, run: str) -> NewHumanRequest:
    return NewHumanRequest(
        id=f"req-{run}-{i:07d}",
        token=f"tok-{run}-{i:07d}-{uuid.UUID(int=i).hex[:16]}",
        channel="slack",
        namespace="global",
        message=f"Deploy build #{i} of payments-api to production?",
        actions=ACTIONS,
        context={"build": i, "service": "payments-api", "requestedBy": "ci"},
    )


def resolution(i: int, run: str) -> Resolved:
    return Resolved(id=f"req-{run}-{i:07d}", action_id="approve", external_ref=f"slack:{i}", feedbacks={})


def table(tag: str) -> str:
    return f"bench_{tag}_{uuid.uuid4().hex[:8]}.human_requests"


AUTOBATCH = True


def make_state(client: Any, table_name: str) -> StreamState:
    return StreamState(client, table_name=table_name, autobatch=AUTOBATCH)


async def drop_prefix(client: Any, state: StreamState) -> None:
    keys = [k async for k in client.scan_iter(match=state.keys.prefix + ":*", count=2000)]
    for start in range(0, len(keys), 1000):
        await client.unlink(*keys[start : start + 1000])


# --- phases ---------------------------------------------------------------------------------------------
async def bench_limit(client: Any, n: int, concurrency: int) -> Run:
    sha = await client.script_load("return 1")
    return await timed(n, concurrency, lambda _i: client.evalsha(sha, 0))


async def bench_requests(client: Any, n: int, c: int, wanted: set[str], res: Results) -> None:
    """create, then the reads on N pending requests, then resolve them all, on one fresh prefix."""
    run = uuid.uuid4().hex[:6]
    state = make_state(client, table("req"))
    await state.ensure_schema()
    try:
        if wanted & REQUEST_OPS:
            res.add("create", c, await timed(n, c, lambda i: state.create(new_request(i, run))))
        if "get" in wanted:
            res.add("get", c, await timed(n, c, lambda i: state.get(f"req-{run}-{i:07d}")))
        if "find_by_token" in wanted:
            tokens = [new_request(i, run).token for i in range(n)]
            res.add("find_by_token", c, await timed(n, c, lambda i: state.find_by_token(tokens[i])))
        if "list_walk" in wanted:
            res.add("list_walk", c, await walk_pages(state, n, c))
        if "count" in wanted:
            res.add("count", c, await timed(n, c, lambda _i: state.count(status="pending")))
        if "resolve" in wanted:
            res.add("resolve", c, await timed(n, c, lambda i: state.resolve(f"req-{run}-{i:07d}", resolution(i, run))))
        if "resolve_uncached" in wanted:
            # As a replica that never saw these requests: every resolve reads the record first.
            other = uuid.uuid4().hex[:6]
            await timed(n, c, lambda i: state.create(new_request(i, other)))
            cold = StreamState(client, table_name=state.table_name, autobatch=AUTOBATCH, subject_cache_bytes=0)
            res.add(
                "resolve_uncached",
                c,
                await timed(n, c, lambda i: cold.resolve(f"req-{other}-{i:07d}", resolution(i, other))),
            )
    finally:
        await drop_prefix(client, state)


async def walk_pages(state: StreamState, n: int, c: int) -> Run:
    """`c` walkers page through the pending list (50 per page) from the top, starting over at the end,
    until `n // 50` pages are read in all; ops = pages."""
    pages = max(1, n // PAGE)
    cursors: list[str | None] = [None] * c

    async def page(i: int) -> None:
        walker = i % c
        result = await state.list(status="pending", limit=PAGE, cursor=cursors[walker])
        cursors[walker] = result.next_cursor

    return await timed(pages, c, page)


async def bench_timeline(client: Any, n: int, c: int, wanted: set[str], res: Results) -> None:
    state = make_state(client, table("tl"))
    await state.ensure_schema()
    threads = max(1, n // THREAD_LEN)
    base = 1_700_000_000_000

    def entry(i: int) -> TimelineEntry:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base + i) // 1000)) + f".{(base + i) % 1000:03d}Z"
        return TimelineEntry(id=f"e{i}", thread_id=f"t{i % threads}", message=f"step {i} done", created_at=at)

    try:
        res.add("append_timeline", c, await timed(n, c, lambda i: state.append_timeline(entry(i))))
        if "timeline" in wanted:
            res.add("timeline", c, await timed(n, c, lambda i: state.timeline(f"t{i % threads}")))
    finally:
        await drop_prefix(client, state)


def hitl_api() -> tuple[Any, Any] | None:
    hitl_cls = getattr(hitl_streams, "Hitl", None)
    if hitl_cls is None:
        return None
    resolver_cls = getattr(hitl_streams, "CallbackResolver", None)
    if resolver_cls is None:
        resolver_cls = importlib.import_module("hitl_streams.server.resolvers").CallbackResolver
    return hitl_cls, resolver_cls


@contextlib.asynccontextmanager
async def running(hitl: Any) -> AsyncIterator[Any]:
    if hasattr(hitl, "__aenter__"):
        async with hitl:
            yield hitl
    else:
        yield hitl


async def asgi_post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST through an ASGI app, in process, with nothing in between: httpx's in-process transport
    costs ~150 µs of CPU per request here (URL parsing, cookies, an import lookup per call), more than
    the handler itself, so it would measure httpx."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def bench_http(client: Any, n: int, c: int, wanted: set[str], res: Results) -> None:
    """POST /.well-known/hitl/v1/requests through `hitl.asgi` in process, then `inbox.resolve` each."""
    api = hitl_api()
    assert api is not None
    hitl_cls, resolver_cls = api

    async def resumed(token: str, result: Any) -> None:
        return None

    state = make_state(client, table("http"))
    await state.ensure_schema()
    hitl = hitl_cls(state=state, resolver=resolver_cls(resumed))
    ids: list[str] = [""] * n
    run = uuid.uuid4().hex[:6]
    path = "/.well-known/hitl/v1/requests"
    try:
        async with running(hitl):
            app = hitl.asgi

            async def create(i: int) -> None:
                body = {"token": f"tok-{run}-{i}", "message": f"Deploy build #{i}?", "actions": [{"id": "approve"}]}
                status, reply = await asgi_post(app, path, json.dumps(body).encode())
                if status != 201:
                    raise RuntimeError(f"http_create: {status} {reply[:200]!r}")
                ids[i] = json.loads(reply)["id"]

            res.add("http_create", c, await timed(n, c, create))
            if "http_resolve" in wanted:
                res.add("http_resolve", c, await timed(n, c, lambda i: hitl.inbox.resolve(ids[i], action_id="approve")))
    finally:
        await drop_prefix(client, state)


async def bench_memory(client: Any, n: int, res: Results) -> StreamState:
    """`used_memory` growth per created-and-resolved request on a fresh prefix (stream, audit index and
    op ids included), then again without the op-id buckets (they expire after the op TTL); then where the
    bytes go, key pattern by key pattern and event type by event type (`bench_keys.py`)."""
    from bench_keys import breakdown, event_sizes

    run = uuid.uuid4().hex[:6]
    state = make_state(client, table("mem"))
    await state.ensure_schema()
    gc.collect()
    before = int((await client.info("memory"))["used_memory"])
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await state.create(new_request(i, run))
            await state.resolve(f"req-{run}-{i:07d}", resolution(i, run))

    await asyncio.gather(*(one(i) for i in range(n)))
    after = int((await client.info("memory"))["used_memory"])
    with_ops = (after - before) / n
    prefix = state.keys.prefix
    res.memory_keys = await breakdown(client, prefix, n, set(), set(), only=":ops:")
    buckets = [k async for k in client.scan_iter(match=prefix + ":ops:*", count=2000)]
    writes = 0
    for start in range(0, len(buckets), 1000):
        chunk = buckets[start : start + 1000]
        writes += sum([await client.hlen(k) for k in chunk])
        await client.unlink(*chunk)
    await asyncio.sleep(0.2)
    without = (int((await client.info("memory"))["used_memory"]) - before) / n
    ttl_note = "the op-id buckets are deleted here, as after their 600 s TTL"
    res.memory = [
        (with_ops, f"right after the writes: includes the op ids of {writes / n:.0f} writes per request (600 s TTL)"),
        (without, f"history and projection only: {ttl_note}"),
    ]
    requests = [new_request(i, run) for i in range(n)]
    ids, tokens = {r.id for r in requests}, {r.token for r in requests}
    res.memory_keys = sorted(
        [*res.memory_keys, *await breakdown(client, prefix, n, ids, tokens)],
        key=lambda row: -float(row["bytes_per_request"]),
    )
    res.memory_keys += await event_sizes(client, state.keys.events)
    return state


async def bench_rebuild(client: Any, state: StreamState, res: Results, repeat: int) -> None:
    events = int(await client.xlen(state.keys.events))
    runs: list[tuple[float, float]] = []
    for _ in range(repeat):
        gc.collect()
        server_before, cpu_before = await server_cpu(), time.process_time()
        t0 = time.perf_counter()
        stats = await state.rebuild()
        total = time.perf_counter() - t0
        client, server = time.process_time() - cpu_before, await server_cpu() - server_before
        runs.append((events / total, stats.events_per_second, client / events * 1e6, server / events * 1e6))
    runs.sort()
    whole, replay_only, client_us, server_us = runs[len(runs) // 2]
    res.replay = {
        "events_per_s": whole,
        "replay_events_per_s": replay_only,
        "events": events,
        "client_cpu_us_per_event": client_us,
        "server_cpu_us_per_event": server_us,
    }


# --- the whole run --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="use this Redis instead of starting one (keys under bench_* only)")
    parser.add_argument("--n", type=int, default=20_000, help="operations per timing (default 20000)")
    parser.add_argument("--concurrency", default="1,64", help="comma-separated task counts (default 1,64)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per timing; the median is shown")
    parser.add_argument("--quick", action="store_true", help="small N, one repetition (CI smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(OPS + OTHER)}")
    parser.add_argument("--no-autobatch", action="store_true", help="StreamState(autobatch=False), for comparison")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop: asyncio's own (default) or uvloop, which uvicorn uses when it is installed",
    )
    parser.add_argument("--json", action="store_true", help="accepted for compatibility; JSON lines are always printed")
    parser.add_argument(
        "--http",
        action="store_true",
        help="instead of the in-process phases, load `hitl-streams serve` through a real socket (tools/bench_http.py)",
    )
    parser.add_argument("--http-url", help="with --http: a running server's base URL (else one is started)")
    parser.add_argument("--http-seconds", type=int, default=10, help="with --http: seconds per phase (default 10)")
    parser.add_argument("--http-connections", type=int, default=32, help="with --http: connections (default 32)")
    parser.add_argument(
        "--http-workers", type=int, default=1, help="with --http: the started serve's --workers (default 1)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 300)
        args.repeat = 1
    args.concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    wanted = {w.strip() for w in args.only.split(",") if w.strip()} or set(OPS + OTHER)
    unknown = wanted - set(OPS + OTHER)
    if unknown:
        parser.error(f"--only: unknown name(s) {', '.join(sorted(unknown))}")
    args.wanted = wanted
    return args


async def bench(args: argparse.Namespace, url: str) -> Results:
    res = Results()
    client = Redis.from_url(url)
    SERVER[:] = [Redis.from_url(url)]
    n, wanted = args.n, args.wanted
    try:
        for c in args.concurrencies:
            await asyncio.gather(*(client.ping() for _ in range(c)))  # open the pool's connections first
            for _ in range(args.repeat):
                res.add("evalsha_noop", c, await bench_limit(client, n, c))
                if wanted & REQUEST_OPS:
                    await bench_requests(client, n, c, wanted, res)
                if wanted & {"append_timeline", "timeline"}:
                    await bench_timeline(client, n, c, wanted, res)
                if wanted & {"http_create", "http_resolve"} and hitl_api() is not None:
                    await bench_http(client, n, c, wanted, res)
            limit = res.median("evalsha_noop", c)
            res.limits[c] = limit.ops_per_s if limit else 0.0
        if hitl_api() is None:
            for name in ("http_create", "http_resolve"):
                if name in wanted:
                    res.skipped[name] = "hitl_streams.Hitl is not available in this build (the server is not merged)"
        if wanted & {"memory", "rebuild"}:
            state = await bench_memory(client, n, res)
            if "rebuild" in wanted:
                await bench_rebuild(client, state, res, args.repeat)
            await drop_prefix(client, state)
    finally:
        await client.aclose()
        await SERVER.pop().aclose()
    return res


def report(args: argparse.Namespace, res: Results) -> None:
    for c in args.concurrencies:
        line: dict[str, Any] = {"kind": "limit", "name": "evalsha_noop", "concurrency": c}
        line["ops_per_s"] = round(res.limits[c], 1)
        limit_run = res.median("evalsha_noop", c)
        if limit_run is not None:
            line["client_cpu_us_per_op"] = round(limit_run.client_cpu / limit_run.n * 1e6, 1)
            line["server_cpu_us_per_op"] = round(limit_run.server_cpu / limit_run.n * 1e6, 1)
        emit(line)
    for name in OPS:
        for c in args.concurrencies:
            run = res.median(name, c)
            if run is None:
                continue
            limit = res.limits.get(c) or 0.0
            emit(
                {
                    "kind": "op",
                    "name": name,
                    "concurrency": c,
                    "n": run.n,
                    "ops_per_s": round(run.ops_per_s, 1),
                    "p50_ms": round(run.percentile(0.50), 3),
                    "p99_ms": round(run.percentile(0.99), 3),
                    "vs_limit": round(run.ops_per_s / limit, 3) if limit else None,
                    "client_cpu_us_per_op": round(run.client_cpu / run.n * 1e6, 1),
                    "server_cpu_us_per_op": round(run.server_cpu / run.n * 1e6, 1),
                }
            )
    for name, reason in res.skipped.items():
        emit({"kind": "skipped", "name": name, "reason": reason})
    if res.memory:
        for value, note in res.memory:
            emit({"kind": "memory", "name": "bytes_per_request", "value": round(value, 1), "note": note})
        for row in res.memory_keys:
            emit({"kind": "memory_key" if "keys" in row else "event_bytes", **row})
    if res.replay:
        emit(
            {
                "kind": "replay",
                "name": "rebuild",
                "events_per_s": round(res.replay["events_per_s"], 1),
                "replay_only_events_per_s": round(res.replay["replay_events_per_s"], 1),
                "events": int(res.replay["events"]),
                "client_cpu_us_per_event": round(res.replay["client_cpu_us_per_event"], 1),
                "server_cpu_us_per_event": round(res.replay["server_cpu_us_per_event"], 1),
            }
        )
    table_to_stderr(args, res)


def table_to_stderr(args: argparse.Namespace, res: Results) -> None:
    cs = args.concurrencies
    log("")
    py = platform.python_version()
    where = f"Python {py}, {os.cpu_count()} cpus, loop {args.loop}"
    log(f"hitl-streams bench: N={args.n}, repeat={args.repeat} (median), {where}")
    head = f"{'operation':<16}"
    head += "".join(f"{'c=' + str(c) + ' ops/s':>14}{'p50/p99 ms':>16}{'vs limit':>10}" for c in cs)
    log(head + f"{'TS ref (c=64)':>15}{'ours/ref':>10}{'cpu us/op py/redis':>20}")
    top = max(cs)

    def cpu(run: Run | None) -> str:
        return f"{run.client_cpu / run.n * 1e6:.0f}/{run.server_cpu / run.n * 1e6:.0f}" if run else "-"

    row = f"{'evalsha_noop':<16}" + "".join(f"{res.limits.get(c, 0):>14,.0f}{'':>16}{'1.00':>10}" for c in cs)
    log(row + f"{'':>25}{cpu(res.median('evalsha_noop', top)):>20}")
    for name in OPS:
        if not any(res.median(name, c) for c in cs):
            if name in res.skipped:
                log(f"{name:<16}  skipped: {res.skipped[name]}")
            continue
        row = f"{name:<16}"
        for c in cs:
            run = res.median(name, c)
            if run is None:
                row += f"{'-':>14}{'':>16}{'':>10}"
                continue
            lat = f"{run.percentile(0.5):.2f}/{run.percentile(0.99):.2f}"
            vs = run.ops_per_s / res.limits[c] if res.limits.get(c) else 0
            row += f"{run.ops_per_s:>14,.0f}{lat:>16}{vs:>10.2f}"
        ref = REFERENCE.get(name)
        best = res.median(name, top)
        ratio = f"{best.ops_per_s / ref:.2f}" if best and ref else "-"
        log(row + f"{ref or 0:>15,.0f}{ratio:>10}{cpu(best):>20}")
    for value, note in res.memory:
        times = value / REFERENCE_BYTES_PER_REQUEST
        side = value / SIDE_BY_SIDE_BYTES_PER_REQUEST
        log(
            f"bytes/request: {value:,.0f} (reference {REFERENCE_BYTES_PER_REQUEST:,}; x{times:.2f}; side by side "
            f"{SIDE_BY_SIDE_BYTES_PER_REQUEST:,}: x{side:.2f}) - {note}"
        )
    if res.memory_keys:
        log("  by key (MEMORY USAGE / requests; the stream's radix tree is Redis's estimate, on the high side):")
    for item in res.memory_keys:
        if "keys" in item:
            size, name = item["bytes_per_request"], item["name"]
            log(f"  {size:>8,.1f} B  {name:<40} {item['keys']:>7,} keys  {item['encoding']}")
        else:
            log(f"  {item['json_bytes']:>8,.1f} B  one `{item['name']}` event's JSON (mean of {item['events']:,})")
    if res.replay:
        log(
            f"rebuild: {res.replay['events_per_s']:,.0f} events/s whole rebuild "
            f"({res.replay['replay_events_per_s']:,.0f} events/s replay phase; target {TARGET_EVENTS_PER_S:,}), "
            f"{int(res.replay['events'])} events, cpu us/event py/redis "
            f"{res.replay['client_cpu_us_per_event']:.0f}/{res.replay['server_cpu_us_per_event']:.0f}"
        )
    log("(ours/ref: our highest-concurrency run over the TypeScript reference at c=64, HTTP at c=32, measured on")
    log(" a quiet machine; cpu us/op: CPU time of this process / of redis-server per op at the highest concurrency)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global AUTOBATCH
    AUTOBATCH = not args.no_autobatch
    run = asyncio.run
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise SystemExit("bench: --loop uvloop needs uvloop (pip install -e '.[server]')") from None
        run = uvloop.run
    if args.http:
        from bench_http import run_http

        with contextlib.ExitStack() as stack:
            url = args.redis_url or stack.enter_context(own_redis())
            lines = run_http(
                url,
                url=args.http_url,
                seconds=args.http_seconds,
                connections=args.http_connections,
                workers=args.http_workers,
            )
        for line in lines:
            emit(line)
            log(
                f"{line['name']:<14} {line['rps']:>9,.0f} req/s"
                f"  p50 {line['p50_ms']:.1f} ms  p99 {line['p99_ms']:.1f} ms"
                f"  server {line['server_cpu_us_per_req']} us/req  redis {line['redis_cpu_us_per_req']} us/req"
                f"  non-2xx {line['non2xx']}  ({line['generator']}, c={line['connections']})"
            )
        return 0
    if args.redis_url:
        res = run(bench(args, args.redis_url))
    else:
        with own_redis() as url:
            res = run(bench(args, url))
    report(args, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
