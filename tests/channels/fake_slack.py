"""A fake of Slack's Web API for the Slack channel's tests: an ASGI app (served by uvicorn on a free
loopback port, `AsyncWebClient(base_url=...)` pointed at it) recording every call, with a queue of
failures to inject per method."""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from hitl_streams.channels.slack_signature import sign
from tests.server.support import read_body

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"


@dataclass
class Failure:
    status: int
    body: dict[str, Any]
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class FakeSlack:
    """`calls[method]` lists the JSON bodies received; `users` maps user ids to profile e-mails."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def posted(self, method: str) -> list[dict[str, Any]]:
        return self.calls.get(method, [])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await read_body(receive)
        method = scope["path"].strip("/").split("/")[-1]
        headers = dict(scope["headers"])
        if headers.get(b"authorization") != f"Bearer {BOT_TOKEN}".encode():
            await self._answer(send, 200, {"ok": False, "error": "not_authed"})
            return
        if scope["method"] == "GET":  # read methods: query parameters (a JSON body would be ignored by Slack)
            data = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
        else:
            assert scope["method"] == "POST"
            data = json.loads(body) if body else {}
        queued = self.failures.get(method)
        if queued:
            failure = queued.pop(0)
            await self._answer(send, failure.status, failure.body, failure.headers)
            return
        self.calls.setdefault(method, []).append(data)
        await self._answer(send, 200, self._result(method, data))

    def _result(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        if method in ("chat.postMessage", "chat.update"):
            channel = data["channel"]
            if channel.startswith("#"):
                channel = "C" + channel[1:].upper()
            ts = data.get("ts") or f"1700000000.{next(self._ts):06d}"
            return {"ok": True, "channel": channel, "ts": ts}
        if method == "users.info":
            email = self.users.get(data.get("user", ""))
            if email is None:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": data["user"], "profile": {"email": email}}}
        return {"ok": True}

    @staticmethod
    async def _answer(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
        raw = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": raw})


def signed(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A Slack interactivity request: form-encoded `payload=`, signed like Slack signs it."""
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time() if at is None else at))
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": sign(secret, timestamp, body),
    }


def click(
    user: str, request_id: str, action_id: str, *, channel: str = "C1", ts: str = "1700000000.000001"
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "trigger_id": "trigger-1",
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [{"type": "button", "action_id": f"hitl:{action_id}", "value": request_id}],
    }


def submission(user: str, request_id: str, action_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "callback_id": "hitl:modal",
            "private_metadata": json.dumps({"requestId": request_id, "actionId": action_id}),
            "state": {"values": values},
        },
    }
