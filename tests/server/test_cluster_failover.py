"""Fault test (issue #12): the Redis Cluster master serving our keys is killed under a create/decide load.

The cluster has two replicas per master and writes wait for one (`wait_replicas=1`), so a write that was
acknowledged is on a replica when the master dies: after the promotion every acknowledged create is
there, every acknowledged decision is resumed exactly once, `verify` is clean, and the same server
serves again without a restart.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from redis.asyncio import RedisCluster

from hitl_streams import StreamState
from hitl_streams.results import HumanResult
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.testing.cluster import LocalCluster

from .support import API

pytestmark = pytest.mark.slow


@dataclass
class Load:
    http: httpx.AsyncClient
    created: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    ok_after: list[float] = field(default_factory=list)
    """When creates were acknowledged (monotonic)."""
    running: bool = True
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def worker(self) -> None:
        while self.running:
            token = f"tok-{next(self._numbers)}-{uuid.uuid4().hex[:6]}"
            body = {"token": token, "message": "Ship it?", "actions": [{"id": "approve"}]}
            try:
                created = await self.http.post(f"{API}/requests", json=body)
            except Exception as exc:
                self.statuses[f"create:{type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)
                continue
            self.statuses[f"create:{created.status_code}"] += 1
            if created.status_code != 201:
                await asyncio.sleep(0.05)
                continue
            self.ok_after.append(time.monotonic())
            request_id = created.json()["id"]
            self.created[token] = request_id
            try:
                decided = await self.http.post(f"{API}/requests/{request_id}/timeout", json={})
            except Exception as exc:
                self.statuses[f"timeout:{type(exc).__name__}"] += 1
                continue
            self.statuses[f"timeout:{decided.status_code}"] += 1
            if decided.status_code == 200:
                self.decided.add(token)


async def test_a_master_killed_under_load_loses_nothing_and_resumes_once(table_name: str) -> None:
    with LocalCluster(masters=3, replicas=2, node_timeout_ms=1000) as cluster:
        client = RedisCluster(startup_nodes=cluster.startup_nodes)
        state = StreamState(client, table_name=table_name, cluster=True, wait_replicas=1, wait_timeout_ms=1000)
        resumed: list[tuple[str, str | None]] = []

        async def engine(token: str, result: HumanResult, *, idempotency_key: str | None = None) -> None:
            resumed.append((token, idempotency_key))

        hitl = Hitl(
            state=state,
            resolver=CallbackResolver(engine),
            secret="",
            retry=RetryPolicy(initial=0.05, maximum=0.5),
            resume_claim_idle_ms=2000,
        )
        transport = httpx.ASGITransport(app=hitl.asgi, raise_app_exceptions=False)
        try:
            async with hitl, httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as http:
                load = Load(http)
                workers = [asyncio.create_task(load.worker()) for _ in range(6)]
                await asyncio.sleep(1.0)
                await asyncio.to_thread(cluster.node_serving(state.keys.events).kill)
                killed = time.monotonic()
                deadline = killed + 30
                while not [t for t in load.ok_after if t > killed + 0.5] or len(load.ok_after) < 5:
                    assert time.monotonic() < deadline, f"no recovery: {load.statuses}"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                load.running = False
                await asyncio.gather(*workers)
                # A failover is "retry later" (503), never "our bug" (500).
                assert not [s for s in load.statuses if s.endswith(":500")], load.statuses
                deadline = time.monotonic() + 30
                while not load.decided <= {token for token, _ in resumed}:
                    assert time.monotonic() < deadline, "acknowledged decisions not resumed"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)

            for token, request_id in load.created.items():
                record = await state.get(request_id)
                assert record is not None and record.token == token, load.statuses
            per_token = collections.Counter(token for token, _ in resumed)
            assert [t for t, n in per_token.items() if n > 1] == []
            report = await state.verify()
            assert report.clean, report
        finally:
            await client.aclose()
