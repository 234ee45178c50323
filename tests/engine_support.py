"""Helpers of the engine binding tests (Temporal, DBOS): a served `Hitl`, waiting for requests, a recording channel."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_streams import Hitl, HumanRequestRecord
from hitl_streams.server.channels import BaseAdapter, HumanRequest, Notification
from hitl_streams.testing.redis_server import free_port
from tests.server.support import served as served_asgi

SECRET = "engine-tests-secret"


def die_with_parent() -> None:
    """`preexec_fn` of the test's child processes: on Linux they get SIGTERM when pytest dies, even by
    SIGKILL (when no fixture teardown runs), so no server or worker outlives the test run."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.asynccontextmanager
async def served(hitl: Hitl) -> AsyncIterator[str]:
    """`hitl.asgi` under a real uvicorn server on a free loopback port; yields the base URL."""
    async with served_app(hitl.asgi, lifespan="on") as url:
        yield url


@contextlib.asynccontextmanager
async def served_app(app: Any, *, lifespan: str = "off") -> AsyncIterator[str]:
    """An ASGI app under a real uvicorn server on a free loopback port; yields the base URL."""
    async with served_asgi(app, lifespan=lifespan) as url:
        yield url


@contextlib.asynccontextmanager
async def served_by_cli(*args: str) -> AsyncIterator[str]:
    """`hitl-streams serve ARGS` in a child process (secret `SECRET`) on a free port; yields its base URL.

    Stopped with Ctrl-C (SIGINT) at the end; its output is checked for a clean stop.
    """
    import httpx

    port = free_port()
    cli = str(Path(sys.executable).parent / "hitl-streams")
    env = {**os.environ, "HITL_SECRET": SECRET}
    process = await asyncio.create_subprocess_exec(
        cli,
        "serve",
        "--port",
        str(port),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(60):
            while True:
                if process.returncode is not None:
                    output = await process.stdout.read() if process.stdout else b""
                    raise AssertionError(f"serve exited with {process.returncode}: {output.decode()}")
                try:
                    if (await http.get(f"{url}/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def pending_requests(hitl: Hitl, count: int = 1, *, within: float = 60.0) -> list[HumanRequestRecord]:
    """The pending requests once there are `count` of them, oldest first."""
    async with asyncio.timeout(within):
        while True:
            page = await hitl.inbox.list(status="pending")
            if len(page.items) >= count:
                return list(reversed(page.items))
            await asyncio.sleep(0.1)


async def timeline_messages(hitl: Hitl, thread_id: str, *, containing: str, within: float = 60.0) -> list[str]:
    """The messages of a thread once one of them is `containing`."""
    async with asyncio.timeout(within):
        while True:
            messages = [entry.message for entry in await hitl.inbox.timeline(thread_id)]
            if containing in messages:
                return messages
            await asyncio.sleep(0.1)


async def resumed(hitl: Hitl, request_id: str, *, within: float = 60.0) -> None:
    """Returns once the audit trail of the request shows a successful resume."""
    from hitl_streams.history.events import ResumeSucceeded

    async with asyncio.timeout(within):
        while True:
            if any(isinstance(record.event, ResumeSucceeded) for record in await hitl.inbox.audit(request_id)):
                return
            await asyncio.sleep(0.1)


@dataclass
class RecordingChannel(BaseAdapter):
    """A channel that accepts everything and remembers what it was sent (an escalation target)."""

    id: str = "ops"
    notifications: list[Notification] = field(default_factory=list)
    requests: list[HumanRequest] = field(default_factory=list)

    async def send(self, request: HumanRequest) -> str:
        self.requests.append(request)
        return f"ops-{request.id}"

    async def notify(self, notification: Notification) -> str | None:
        self.notifications.append(notification)
        return f"ops-note-{len(self.notifications)}"


def activity_inputs(history_events: Sequence[Any]) -> list[Any]:
    """The (JSON) inputs of the activities a workflow history scheduled, in order."""
    return [
        json.loads(payload.data)
        for event in history_events
        if event.HasField("activity_task_scheduled_event_attributes")
        for payload in event.activity_task_scheduled_event_attributes.input.payloads
    ]


def timer_seconds(history_events: Sequence[Any]) -> list[float]:
    """The durations of the timers a workflow history started, in order."""
    return [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        for event in history_events
        if event.HasField("timer_started_event_attributes")
    ]
