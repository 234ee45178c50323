"""The internal HTTP API through `hitl.asgi` (REF §1.4, §5) with a recording adapter."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from hitl_streams import InMemoryState, Resolved, State, TimedOut
from hitl_streams.server import CallbackResolver, Hitl
from hitl_streams.testing.recording import RecordingAdapter

from .support import API, APPROVE_DENY, Resumed

pytestmark = pytest.mark.asyncio


def create_body(token: str = "tok-1", **extra: Any) -> dict[str, Any]:
    return {"token": token, "message": "Ship it?", "actions": APPROVE_DENY, **extra}


async def test_create_records_and_delivers(client: httpx.AsyncClient, chat: RecordingAdapter, hitl: Hitl) -> None:
    response = await client.post(f"{API}/requests", json=create_body(context={"pr": 7}))
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["id", "externalRef"]
    assert body["externalRef"] == f"chat/{body['id']}"
    [sent] = chat.sent
    assert (sent.id, sent.channel, sent.destination, sent.message) == (body["id"], "chat", None, "Ship it?")
    assert [a.id for a in sent.actions] == ["approve", "deny"]
    assert sent.context == {"pr": 7}
    record = await hitl.inbox.get(body["id"])
    assert record is not None
    assert (record.status, record.channel, record.namespace, record.external_id) == (
        "pending",
        "chat",
        "global",
        body["externalRef"],
    )


async def test_create_is_idempotent_on_the_token(client: httpx.AsyncClient, chat: RecordingAdapter) -> None:
    first = (await client.post(f"{API}/requests", json=create_body())).json()
    again = await client.post(f"{API}/requests", json=create_body())
    assert again.status_code == 201
    assert again.json() == first
    assert len(chat.sent) == 1


@pytest.mark.parametrize(
    "change", [{"message": "changed"}, {"actions": [{"id": "approve"}]}, {"context": {"x": 1}}, {"namespace": "other"}]
)
async def test_a_token_reused_for_another_request_is_a_conflict(
    client: httpx.AsyncClient, chat: RecordingAdapter, change: dict[str, Any]
) -> None:
    """The reference silently returned the first request (REF §10.3 item 17)."""
    await client.post(f"{API}/requests", json=create_body())
    response = await client.post(f"{API}/requests", json=create_body(**change))
    assert (response.status_code, response.json()) == (
        409,
        {"error": "A human request with this resume token already exists"},
    )
    assert len(chat.sent) == 1


async def test_concurrent_creates_with_one_token_make_one_record_and_one_delivery(
    client: httpx.AsyncClient, chat: RecordingAdapter, hitl: Hitl
) -> None:
    responses = await asyncio.gather(*(client.post(f"{API}/requests", json=create_body()) for _ in range(10)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert await hitl.inbox.count() == 1
    assert len(chat.sent) == 1


async def test_a_retry_finishes_an_interrupted_delivery(
    client: httpx.AsyncClient, chat: RecordingAdapter, hitl: Hitl
) -> None:
    chat.fail("send")
    failed = await client.post(f"{API}/requests", json=create_body())
    assert failed.status_code == 502
    assert failed.json() == {"error": 'Channel "chat" failed to deliver'}
    [pending] = (await hitl.inbox.list()).items
    assert pending.external_id is None

    retried = await client.post(f"{API}/requests", json=create_body())
    assert retried.status_code == 201
    assert retried.json() == {"id": pending.id, "externalRef": f"chat/{pending.id}"}
    assert [s.id for s in chat.sent] == [pending.id, pending.id]
    assert await hitl.inbox.count() == 1


async def test_timeout_resolves_once_and_then_returns_the_stored_result(
    client: httpx.AsyncClient, chat: RecordingAdapter, hitl: Hitl
) -> None:
    created = (await client.post(f"{API}/requests", json=create_body())).json()
    first = await client.post(f"{API}/requests/{created['id']}/timeout", content=b"ignored, not JSON")
    assert first.status_code == 200
    expected = {"result": {"type": "TIMED_OUT", "id": created["id"], "externalRef": created["externalRef"]}}
    assert first.json() == expected
    second = await client.post(f"{API}/requests/{created['id']}/timeout", json={})
    assert second.json() == expected
    assert chat.updates == [(created["externalRef"], TimedOut(id=created["id"], external_ref=created["externalRef"]))]
    record = await hitl.inbox.get(created["id"])
    assert record is not None and record.status == "resolved"


async def test_timeout_after_a_decision_returns_the_decision(client: httpx.AsyncClient, hitl: Hitl) -> None:
    created = (await client.post(f"{API}/requests", json=create_body())).json()
    await hitl.inbox.resolve(created["id"], action_id="approve")
    response = await client.post(f"{API}/requests/{created['id']}/timeout", json={})
    result = response.json()["result"]
    assert (result["type"], result["actionId"], result["feedbacks"]) == ("RESOLVED", "approve", {"subject": "Hi"})


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for path, message in [
        ("requests/nope/timeout", 'Unknown human request "nope"'),
        ("requests/nope/remind", 'Unknown human request "nope"'),
        ("batches/nope/timeout", 'Unknown batch "nope"'),
        ("batches/nope/remind", 'Unknown batch "nope"'),
    ]:
        response = await client.post(f"{API}/{path}", json={"kind": "remind"})
        assert (response.status_code, response.json()) == (404, {"error": message}), path


async def test_remind_threads_a_notification_while_pending(
    client: httpx.AsyncClient, chat: RecordingAdapter, hitl: Hitl
) -> None:
    created = (await client.post(f"{API}/requests", json=create_body())).json()
    response = await client.post(f"{API}/requests/{created['id']}/remind", json={"kind": "remind"})
    assert response.json() == {"pending": True}
    [note] = chat.notifications
    assert (note.channel, note.destination, note.message) == ("chat", created["externalRef"], DEFAULT_REMIND)
    [entry] = await hitl.inbox.timeline(created["id"])
    assert entry.message == DEFAULT_REMIND

    await hitl.inbox.resolve(created["id"], action_id="approve")
    response = await client.post(f"{API}/requests/{created['id']}/remind", json={"kind": "remind", "message": "x"})
    assert response.json() == {"pending": False}
    assert len(chat.notifications) == 1


DEFAULT_REMIND = "Reminder: approval still pending"


async def test_remind_without_a_body_is_a_default_reminder(client: httpx.AsyncClient, chat: RecordingAdapter) -> None:
    """`curl -X POST .../remind` sends no body: every field is optional, so it means `{}`."""
    created = (await client.post(f"{API}/requests", json=create_body())).json()
    for content in (b"", b"  \n"):
        response = await client.post(f"{API}/requests/{created['id']}/remind", content=content)
        assert (response.status_code, response.json()) == (200, {"pending": True})
    assert [note.message for note in chat.notifications] == [DEFAULT_REMIND, DEFAULT_REMIND]
    broken = await client.post(f"{API}/requests/{created['id']}/remind", content=b"{not json")
    assert (broken.status_code, broken.json()) == (400, {"error": "Invalid JSON body"})
    empty_create = await client.post(f"{API}/requests", content=b"")  # a create needs its fields
    assert empty_create.status_code == 400


async def test_escalation_notify_goes_to_the_other_channel_without_the_thread(state: State, resumed: Resumed) -> None:
    chat, pager = RecordingAdapter("chat"), RecordingAdapter("pager")
    hitl = Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[chat, pager], secret="")
    transport = httpx.ASGITransport(app=hitl.asgi)
    async with hitl, httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        created = (await client.post(f"{API}/requests", json=create_body())).json()
        body = {"kind": "escalate", "channel": "pager:oncall", "message": "Still waiting"}
        response = await client.post(f"{API}/requests/{created['id']}/remind", json=body)
    assert response.json() == {"pending": True}
    [note] = pager.notifications
    # The chat thread ref is not handed to the pager adapter (REF §10.6 item 32).
    assert (note.channel, note.destination, note.message) == ("pager", "oncall", "Still waiting")
    assert chat.notifications == []


async def test_escalation_redeliver_sends_the_request_again_and_updates_every_copy(
    state: State, resumed: Resumed
) -> None:
    chat, pager = RecordingAdapter("chat"), RecordingAdapter("pager")
    hitl = Hitl(state=state, resolver=CallbackResolver(resumed), adapters=[chat, pager], secret="")
    transport = httpx.ASGITransport(app=hitl.asgi)
    async with hitl, httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        created = (await client.post(f"{API}/requests", json=create_body())).json()
        body = {"kind": "escalate", "channel": "pager:oncall", "mode": "redeliver"}
        response = await client.post(f"{API}/requests/{created['id']}/remind", json=body)
        assert response.json() == {"pending": True}
        record = await hitl.inbox.get(created["id"])
        assert record is not None
        assert record.external_ids == {"chat": f"chat/{created['id']}", "pager:oncall": f"pager/{created['id']}"}
        [again] = pager.sent
        assert (again.id, again.destination, again.message) == (created["id"], "oncall", "Ship it?")
        result = await hitl.inbox.resolve(created["id"], action_id="approve")
    assert chat.updates == [(f"chat/{created['id']}", result)]
    assert pager.updates == [(f"pager/{created['id']}", result)]


@pytest.mark.parametrize(
    ("route", "body", "error"),
    [
        ("requests", {"token": "t", "message": "m"}, "token, message, and a non-empty actions array are required"),
        ("requests", {"token": 1, "message": "m", "actions": APPROVE_DENY}, "token, message"),
        ("requests", {"token": "t", "message": "m", "actions": []}, "token, message"),
        ("requests", [1, 2], "The body must be a JSON object"),
        ("requests", create_body(actions=[{"id": "a"}, {"id": "a"}]), 'Duplicate action id "a".'),
        ("requests", create_body(actions=[{"label": "no id"}]), "Invalid actions: Object missing required field `id`"),
        ("requests", create_body(actions=[{"id": "a", "style": "loud"}]), "Invalid actions:"),
        ("requests", create_body(actions=[{"id": "a", "fields": {"x": {"kind": "select", "label": "X"}}}]), "Invalid"),
        ("requests", create_body(namespace="bad ns"), 'Invalid namespace "bad ns".'),
        ("requests", create_body(namespace=""), 'Invalid namespace "".'),
        ("requests", create_body(channel="fax"), 'Unknown channel "fax". Configured adapters: chat, inbox'),
        ("requests", create_body(context=[1]), "context must be an object"),
        ("requests", create_body(after="x"), 'after must be an object with a string "id"'),
        ("batches", {"actions": APPROVE_DENY}, "items must be a non-empty array"),
        ("batches", {"items": [{"token": "a", "message": "m"}]}, "actions must be a non-empty array"),
        ("batches", {"items": [{"message": "m"}], "actions": APPROVE_DENY}, "items[0] needs a string token"),
        (
            "batches",
            {"items": [{"token": "a", "message": "m"}, {"token": "a", "message": "n"}], "actions": APPROVE_DENY},
            "Each batch item needs its own token",
        ),
        (
            "batches",
            {"items": [{"token": "a", "message": "m"}], "actions": APPROVE_DENY, "defaultsActionId": "zzz"},
            'defaultsActionId "zzz" not found in actions.',
        ),
        (
            "batches",
            {"items": [{"token": "a", "message": "m", "defaults": {"x": "1"}}], "actions": [{"id": "deny"}]},
            "waitForHuman batch items require an approve action or defaultsActionId.",
        ),
        (
            "batches",
            {"items": [{"token": "a", "message": "m", "defaults": {"subject": 5}}], "actions": APPROVE_DENY},
            'items[0].defaults["subject"] does not fit the field',
        ),
        ("notifications", {"channel": "chat"}, "message must be a string"),
        ("notifications", {"message": "m", "channel": "fax"}, 'Unknown channel "fax".'),
        ("notifications", {"message": "m", "detail": "x"}, "detail must be an object"),
    ],
)
async def test_caller_mistakes_are_400_with_a_message(
    client: httpx.AsyncClient, route: str, body: Any, error: str
) -> None:
    response = await client.post(f"{API}/{route}", json=body)
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    assert response.json()["error"].startswith(error)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (None, "The body must be a JSON object"),
        ({"kind": "snooze"}, 'kind must be "remind" or "escalate"'),
        ({"kind": "escalate"}, "an escalation needs a channel"),
        ({"kind": "escalate", "channel": "chat", "mode": "shout"}, 'mode must be "notify" or "redeliver"'),
        ({"kind": "escalate", "channel": "fax"}, 'Unknown channel "fax"'),
        ({"kind": "remind", "message": 5}, "message must be a string"),
    ],
)
async def test_malformed_remind_bodies_are_400(client: httpx.AsyncClient, body: Any, error: str) -> None:
    created = (await client.post(f"{API}/requests", json=create_body())).json()
    response = await client.post(f"{API}/requests/{created['id']}/remind", content=json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


@pytest.mark.parametrize("raw", [b"", b"{", b"nul", b'{"a":1}x', b"\xff\xfe", b"[1e400]"])
async def test_bad_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(f"{API}/requests", content=raw)
    assert (response.status_code, response.json()) == (400, {"error": "Invalid JSON body"})


async def test_unknown_paths_are_404_and_wrong_methods_405(client: httpx.AsyncClient) -> None:
    for path in ["/", f"{API}", f"{API}/inbox/x/resolve", f"{API}/requests/x", f"{API}/requests/x/y/timeout"]:
        response = await client.post(path, json={})
        assert (response.status_code, response.json()) == (404, {"error": "Not found"}), path
    response = await client.get(f"{API}/requests")
    assert (response.status_code, response.json()) == (405, {"error": "Method not allowed"})
    assert response.headers["allow"] == "POST"
    assert (await client.delete(f"{API}/requests/x/timeout")).status_code == 405


async def test_healthz_reports_the_state_kind(client: httpx.AsyncClient, state: State) -> None:
    for path in ["/healthz", f"{API}/healthz"]:
        response = await client.get(path)
        assert (response.status_code, response.json()) == (200, {"ok": True, "state": state.kind})  # type: ignore[attr-defined]


async def test_bearer_secret_is_required_when_set(chat: RecordingAdapter, resumed: Resumed) -> None:
    hitl = Hitl(resolver=CallbackResolver(resumed), adapters=[chat], secret="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        for headers in [
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": "Basic s3cret"},
            {"authorization": "Bearers3cret"},
            {"authorization": "Bearer s3cret "},
            {"authorization": "Bearer S3CRET"},
        ]:
            response = await client.post(f"{API}/requests", json=create_body(), headers=headers)
            assert (response.status_code, response.json()) == (401, {"error": "Unauthorized"}), headers
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert chat.sent == []
        ok = await client.post(f"{API}/requests", json=create_body(), headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 201
        # The scheme is case-insensitive (RFC 9110 §11.1); the secret is not.
        for scheme in ["bearer", "BEARER", "bEaReR"]:
            again = await client.post(
                f"{API}/requests", json=create_body(), headers={"authorization": f"{scheme} s3cret"}
            )
            assert again.status_code == 201, scheme
        # Unknown routes answer 404 before auth, as in the reference.
        assert (await client.post(f"{API}/nope")).status_code == 404


async def test_secret_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch, resumed: Resumed) -> None:
    monkeypatch.setenv("HITL_SECRET", "from-env")
    hitl = Hitl(resolver=CallbackResolver(resumed))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        assert (await client.post(f"{API}/requests", json=create_body())).status_code == 401
        good = {"authorization": "Bearer from-env"}
        assert (await client.post(f"{API}/requests", json=create_body(), headers=good)).status_code == 201


async def test_an_open_api_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, resumed: Resumed
) -> None:
    monkeypatch.delenv("HITL_SECRET", raising=False)
    hitl = Hitl(resolver=CallbackResolver(resumed))
    with caplog.at_level(logging.WARNING, logger="hitl_streams.server"):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
            for n in range(3):
                assert (await client.post(f"{API}/requests", json=create_body(f"t{n}"))).status_code == 201
    warnings = [r for r in caplog.records if "HITL_SECRET is not set" in r.getMessage()]
    assert len(warnings) == 1


async def test_bodies_over_the_limit_are_413(resumed: Resumed) -> None:
    hitl = Hitl(resolver=CallbackResolver(resumed), secret="", max_body_bytes=100)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as client:
        big = create_body(message="x" * 200)
        response = await client.post(f"{API}/requests", json=big)
        assert response.status_code == 413
        assert response.json() == {"error": "Request body too large (limit 100 bytes)"}

        async def chunks() -> Any:  # no content-length: counted while reading
            for _ in range(5):
                yield b" " * 30

        response = await client.post(f"{API}/requests", content=chunks())
        assert response.status_code == 413
        assert await hitl.inbox.count() == 0


async def test_routes_follow_the_mount_point(chat: RecordingAdapter, resumed: Resumed) -> None:
    hitl = Hitl(resolver=CallbackResolver(resumed), adapters=[chat], secret="")
    transport = httpx.ASGITransport(app=hitl.asgi, root_path="/api/hitl")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        created = await client.post("/api/hitl/requests", json=create_body())
        assert created.status_code == 201
        assert (await client.post(f"/api/hitl/requests/{created.json()['id']}/timeout")).status_code == 200
        # The trailing-segment matching of the reference is gone: a foreign prefix is not a route.
        assert (await client.post("/elsewhere/requests", json=create_body("t2"))).status_code == 404


async def test_channel_routes_are_relative_to_the_mount_and_need_no_bearer(resumed: Resumed) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        body = b'{"pong":true}'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    line = RecordingAdapter("line", channel_key="line", app=app)
    hitl = Hitl(resolver=CallbackResolver(resumed), adapters=[line], secret="s")
    transport = httpx.ASGITransport(app=hitl.asgi, root_path="/hitl")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/hitl/channels/line/feedback")
        assert (response.status_code, response.json()) == (200, {"pong": True})
        assert seen[0]["root_path"] == "/hitl/channels/line"
        assert seen[0]["path"] == "/hitl/channels/line/feedback"
        response = await client.post("/hitl/.well-known/hitl/v1/channels/line/x", json={})
        assert response.status_code == 200
        assert seen[1]["root_path"] == "/hitl/.well-known/hitl/v1/channels/line"
        for path in ["/hitl/channels/other/x", "/hitl/channels", "/hitl/channels/"]:
            response = await client.get(path)
            assert (response.status_code, response.json()) == (404, {"error": "Not found"}), path


async def test_the_reviewer_decision_resumes_the_workflow(
    client: httpx.AsyncClient, hitl: Hitl, resumed: Resumed
) -> None:
    created = (await client.post(f"{API}/requests", json=create_body("tok-9"))).json()
    result = await hitl.inbox.resolve(created["id"], action_id="deny", feedbacks={"reason": "no"})
    await resumed.wait_for(1)
    assert resumed.calls == [("tok-9", result)]
    assert isinstance(result, Resolved) and result.edited and result.feedbacks == {"reason": "no"}


async def test_default_state_is_a_fresh_in_memory_state_per_hitl(resumed: Resumed) -> None:
    first, second = Hitl(resolver=CallbackResolver(resumed)), Hitl(resolver=CallbackResolver(resumed))
    assert isinstance(first.state, InMemoryState) and first.state is not second.state
    assert [a.id for a in first.adapters] == ["inbox"]


async def test_a_retry_during_a_slow_delivery_does_not_deliver_twice(
    client: httpx.AsyncClient, chat: RecordingAdapter, hitl: Hitl
) -> None:
    gate = chat.pause("send")
    first = asyncio.create_task(client.post(f"{API}/requests", json=create_body()))
    for _ in range(1000):  # until the first delivery is under way
        if chat.sent:
            break
        await asyncio.sleep(0.001)
    retry = asyncio.create_task(client.post(f"{API}/requests", json=create_body()))
    await asyncio.sleep(0.05)
    assert not retry.done()  # it waits for the delivery in flight instead of starting another
    gate.set()
    responses = await asyncio.gather(first, retry)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert len(chat.sent) == 1


async def test_a_bare_async_function_is_a_resolver() -> None:
    calls: list[tuple[str, Any]] = []

    async def resume(token: str, result: Any) -> None:
        calls.append((token, result))

    async with Hitl(resolver=resume) as hitl:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://t") as http:
            created = (await http.post(f"{API}/requests", json=create_body())).json()
        result = await hitl.inbox.resolve(created["id"], action_id="approve")
        for _ in range(200):
            if calls:
                break
            await asyncio.sleep(0.01)
    assert calls == [("tok-1", result)]
    with pytest.raises(TypeError, match="resolver"):
        Hitl(resolver="not a resolver")  # type: ignore[arg-type]
