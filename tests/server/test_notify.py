"""Notifications, timelines and thread anchoring (REF §5.1, §5.4), without the thread-ref leak (§10.6)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hitl_streams import State, UnknownChannelError
from hitl_streams.server import CallbackResolver, Hitl, resolve_channel
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY, Resumed


@pytest.fixture
async def two(
    state: State, resumed: Resumed
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingAdapter, RecordingAdapter, Hitl]]:
    slack, line = RecordingAdapter("slack", default_channel="C-main"), RecordingAdapter("line")
    hitl = Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[slack, line], secret="")
    async with hitl, httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        yield client, slack, line, hitl


async def post(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    response = await client.post(f"{API}/{path}", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def request(token: str, **extra: Any) -> dict[str, Any]:
    return {"token": token, "message": "Approve?", "actions": APPROVE_DENY, **extra}


def test_channel_keys_resolve_by_exact_id_then_longest_prefix() -> None:
    adapters = [RecordingAdapter("a"), RecordingAdapter("a:b", default_channel="D"), RecordingAdapter("slack")]
    assert resolve_channel(adapters, None).channel_ref == "a"
    assert resolve_channel(adapters, "a:b").channel_ref == "a:b:D"  # exact id wins, with its default channel
    route = resolve_channel(adapters, "a:b:x:y")
    assert (route.adapter.id, route.destination, route.channel_ref) == ("a:b", "x:y", "a:b:x:y")
    route = resolve_channel(adapters, "slack:C1:1700.1")
    assert (route.adapter.id, route.destination) == ("slack", "C1:1700.1")
    message = 'Unknown channel "fax". Configured adapters: a, a:b, slack'
    with pytest.raises(UnknownChannelError, match=re.escape(message)):
        resolve_channel(adapters, "fax")


async def test_a_standalone_notification_uses_the_first_adapter(two: Any) -> None:
    client, slack, line, _ = two
    anchor = await post(client, "notifications", {"message": "Deploy started", "detail": {"sha": "abc"}})
    assert anchor == {"id": anchor["id"], "externalRef": "slack/note/1"}
    [note] = slack.notifications
    assert (note.message, note.channel, note.destination, note.detail) == (
        "Deploy started",
        "slack",
        None,
        {"sha": "abc"},
    )
    assert line.notifications == []


async def test_notify_after_a_request_defaults_to_its_channel_and_thread(two: Any) -> None:
    client, slack, line, _ = two
    created = await post(client, "requests", request("t1", channel="line:user:U1"))
    anchor = await post(client, "notifications", {"message": "FYI", "after": {"id": created["id"]}})
    # Not the first adapter (slack): the anchor's own channel, threaded under its message.
    [note] = line.notifications
    assert (note.channel, note.destination) == ("line", created["externalRef"])
    assert slack.notifications == []
    # The notification is itself an anchor: a chain stays in one thread and one timeline group.
    await post(client, "notifications", {"message": "FYI 2", "on": anchor["id"]})
    assert line.notifications[1].destination == anchor["externalRef"]


async def test_notify_on_another_adapter_never_gets_the_thread_ref(two: Any) -> None:
    client, slack, _, _ = two
    created = await post(client, "requests", request("t1", channel="line:user:U1"))
    await post(client, "notifications", {"message": "x", "after": {"id": created["id"]}, "channel": "slack"})
    [note] = slack.notifications
    assert note.destination is None  # slack's default channel, not LINE's message id (REF §10.6 item 32)


async def test_an_explicit_destination_beats_the_anchor_thread(two: Any) -> None:
    client, _, line, _ = two
    created = await post(client, "requests", request("t1", channel="line:user:U1"))
    await post(client, "notifications", {"message": "x", "after": {"id": created["id"]}, "channel": "line:user:U9"})
    assert line.notifications[0].destination == "user:U9"
    await post(client, "notifications", {"message": "y", "after": {"id": created["id"]}, "channel": "line"})
    assert line.notifications[1].destination == created["externalRef"]


async def test_a_request_after_an_anchor_is_threaded_on_the_anchor_channel(two: Any) -> None:
    client, slack, line, _ = two
    note = await post(client, "notifications", {"message": "Starting", "channel": "line:group:G1"})
    created = await post(client, "requests", request("t2", after={"id": note["id"]}))
    [sent] = line.sent
    assert (sent.id, sent.destination) == (created["id"], note["externalRef"])
    assert slack.sent == []


async def test_notifications_join_the_anchor_timeline(two: Any) -> None:
    client, _, _, hitl = two
    created = await post(client, "requests", request("t1"))
    await post(client, "notifications", {"message": "one", "on": created["id"]})
    await post(client, "notifications", {"message": "two", "after": {"id": created["id"]}, "detail": {"n": 2}})
    timeline = await hitl.inbox.timeline(created["id"])
    assert [(e.thread_id, e.message, e.detail) for e in timeline] == [
        (created["id"], "one", None),
        (created["id"], "two", {"n": 2}),
    ]
    # An unknown anchor id is its own group (no error, as in the reference).
    await post(client, "notifications", {"message": "loose", "on": "no-such-id"})
    assert [e.message for e in await hitl.inbox.timeline("no-such-id")] == ["loose"]


async def test_timeline_groups_and_batch_anchors(state: State, resumed: Resumed) -> None:
    board = RecordingAdapter("board", batch=True)
    hitl = Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[board], secret="")
    async with hitl, httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        items = [{"token": "i0", "message": "a"}, {"token": "i1", "message": "b"}]
        batch = await post(client, "batches", {"items": items, "actions": APPROVE_DENY})
        await post(client, "notifications", {"message": "on item", "after": {"id": batch["ids"][1]}})
        await post(client, "notifications", {"message": "on batch", "on": batch["batchId"]})
        timeline = await hitl.inbox.timeline(batch["batchId"])
    assert [e.message for e in timeline] == ["on item", "on batch"]
    assert [n.destination for n in board.notifications] == [batch["externalRef"]] * 2
