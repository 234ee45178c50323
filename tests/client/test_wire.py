"""The client's wire behavior (REF §6.1, §6.2, §6.4): bodies as the server receives them, headers, URLs,
lazy settings, errors with status and body, and validation before any suspend or request."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import msgspec
import pytest

from hitl_streams import Hitl, Resolved, actions, field
from hitl_streams.client import (
    BatchItem,
    HitlError,
    HitlHttpError,
    Notified,
    Pending,
    ValidationError,
    create_hitl_client,
    escalate,
    remind,
)
from hitl_streams.testing import RecordingAdapter

from .support import WirePrimitives

API = "/.well-known/hitl/v1"
ACTIONS = actions().approve(fields={"subject": field.text(label="Subject", default="Hi")}).deny().build()
ACTIONS_JSON = [
    {"id": "approve", "fields": {"subject": {"kind": "text", "label": "Subject", "default": "Hi"}}},
    {"id": "deny"},
]


@pytest.fixture
def hitl() -> Hitl:
    return Hitl(adapters=[RecordingAdapter("chat"), RecordingAdapter("ops")], secret="s3cret")


@pytest.fixture
def wire(hitl: Hitl) -> WirePrimitives:
    return WirePrimitives(hitl)


def client_for(wire: WirePrimitives, **options: object):  # type: ignore[no-untyped-def]
    options.setdefault("url", "http://hitl.example/")
    options.setdefault("secret", "s3cret")
    return create_hitl_client(wire, **options)  # type: ignore[arg-type]


async def test_create_request_body_headers_and_url(wire: WirePrimitives) -> None:
    client = client_for(wire)
    anchor = await client.notify(message="Starting")
    pending = await client.request_human(
        message="Deploy?",
        actions=ACTIONS,
        context={"service": "api", "n": 3},
        channel="chat",
        namespace="deploys",
        after=anchor,
    )
    [received] = [r for r in wire.received if r.path.endswith("/requests")]
    assert received.method == "POST"
    assert received.path == f"{API}/requests"
    assert received.headers["authorization"] == "Bearer s3cret"
    assert received.headers["content-type"] == "application/json"
    assert received.json == {
        "token": "wire-token-1",
        "message": "Deploy?",
        "actions": ACTIONS_JSON,
        "context": {"service": "api", "n": 3},
        "channel": "chat",
        "namespace": "deploys",
        "after": {"id": anchor.id},
    }
    # The key order of the TypeScript client (JSON.stringify of its object literal).
    order = ["token", "message", "actions", "context", "channel", "namespace", "after"]
    assert list(json.loads(received.body)) == order
    assert wire.requests[-1].url == f"http://hitl.example{API}/requests"  # one trailing "/" stripped
    assert pending.id and pending.external_ref == f"chat/{pending.id}" and pending.batch is False
    assert pending.ids == (pending.id,) and pending.tokens == ("wire-token-1",)


async def test_absent_options_are_left_out(wire: WirePrimitives) -> None:
    await client_for(wire).request_human(message="Hi", actions=ACTIONS)
    assert wire.bodies("/requests") == [{"token": "wire-token-1", "message": "Hi", "actions": ACTIONS_JSON}]


async def test_batch_body(wire: WirePrimitives) -> None:
    client = client_for(wire)
    pending = await client.request_human(
        message="Three deploys",
        actions=ACTIONS,
        items=[BatchItem(message="api"), {"message": "web", "defaults": {"subject": "Web"}}, {"message": "db"}],
        context={"wave": 1},
        defaults_action_id="approve",
    )
    assert wire.suspends == 3
    assert wire.bodies("/batches") == [
        {
            "message": "Three deploys",
            "actions": ACTIONS_JSON,
            "context": {"wave": 1},
            "defaultsActionId": "approve",
            "items": [
                {"token": "wire-token-1", "message": "api"},
                {"token": "wire-token-2", "message": "web", "defaults": {"subject": "Web"}},
                {"token": "wire-token-3", "message": "db"},
            ],
        }
    ]
    assert pending.batch is True
    assert pending.ids == tuple(f"{pending.id}:{i}" for i in range(3))
    assert pending.tokens == ("wire-token-1", "wire-token-2", "wire-token-3")


async def test_notify_bodies(wire: WirePrimitives) -> None:
    client = client_for(wire)
    pending = await client.request_human(message="Deploy?", actions=ACTIONS)
    first = await client.notify(message="Build started", after=pending, detail={"step": 1})
    second = await client.notify(message="Build done", on=first.id, channel="ops")
    assert wire.bodies("/notifications") == [
        {"message": "Build started", "after": {"id": pending.id}, "detail": {"step": 1}},
        {"message": "Build done", "on": first.id, "channel": "ops"},
    ]
    assert isinstance(first, Notified) and first.id and second.id != first.id


async def test_timeout_and_remind_bodies(wire: WirePrimitives) -> None:
    client = client_for(wire)
    pending = await client.request_human(message="Deploy?", actions=ACTIONS)
    result = await client.wait_for_human(
        pending,
        timeout="1h",
        reminders=[remind.after("10m", message="Ping"), escalate.to("ops", mode="redeliver").after("20m")],
    )
    assert result.id == pending.id and result.__class__.__name__ == "TimedOut"
    assert wire.sleeps == [600.0, 600.0, 2400.0]
    assert wire.bodies("/remind") == [
        {"kind": "remind", "message": "Ping"},
        {"kind": "escalate", "channel": "ops", "message": "Escalation: approval still pending", "mode": "redeliver"},
    ]
    timeouts = [r for r in wire.requests if r.url.endswith("/timeout")]
    assert [(r.url, r.method, r.body) for r in timeouts] == [
        (f"http://hitl.example{API}/requests/{pending.id}/timeout", "POST", "{}")
    ]
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in wire.requests)


async def test_base_path_and_lazy_settings(hitl: Hitl) -> None:
    # Served at a custom mount: the client's base path names it.
    wire = WirePrimitives(hitl)
    urls = iter(["http://one.example//", "http://two.example"])
    secrets = iter(["s3cret", "s3cret"])
    client = create_hitl_client(
        wire, url=lambda: next(urls), secret=lambda: next(secrets), base_path="/.well-known/hitl/v1"
    )
    await client.notify(message="a")
    await client.notify(message="b")
    assert [r.url for r in wire.requests] == [
        f"http://one.example/{API}/notifications",  # exactly one trailing slash stripped, as the reference
        f"http://two.example{API}/notifications",
    ]


async def test_env_fallbacks_are_read_per_call(hitl: Hitl, monkeypatch: pytest.MonkeyPatch) -> None:
    wire = WirePrimitives(hitl)
    monkeypatch.delenv("HITL_URL", raising=False)
    monkeypatch.delenv("HITL_SECRET", raising=False)
    client = create_hitl_client(wire)  # built before the environment says anything
    with pytest.raises(ValidationError, match="HITL_URL"):
        await client.notify(message="a")
    monkeypatch.setenv("HITL_URL", "http://env.example")
    monkeypatch.setenv("HITL_SECRET", "s3cret")
    await client.notify(message="b")
    assert wire.requests[-1].url == f"http://env.example{API}/notifications"
    assert wire.requests[-1].headers["authorization"] == "Bearer s3cret"


async def test_no_secret_no_authorization_header() -> None:
    wire = WirePrimitives(Hitl(secret=""))
    client = create_hitl_client(wire, url="http://h", secret="")
    await client.notify(message="open server")
    assert "authorization" not in wire.received[-1].headers


async def test_errors_carry_status_and_body(wire: WirePrimitives) -> None:
    client = client_for(wire, secret="wrong")
    with pytest.raises(HitlHttpError) as caught:
        await client.notify(message="x")
    assert caught.value.status == 401
    assert caught.value.body == '{"error":"Unauthorized"}'
    assert str(caught.value) == 'hitl: POST /notifications failed with 401: {"error":"Unauthorized"}'
    assert isinstance(caught.value, HitlError)

    ghost: Pending[Resolved] = Pending(id="nope", external_ref="", ids=("nope",), tokens=("wire-token-9",))
    with pytest.raises(HitlHttpError) as missing:
        await client_for(wire).wait_for_human(ghost, timeout="1s")  # type: ignore[arg-type]
    assert missing.value.status == 404
    assert str(missing.value) == (
        'hitl: POST /requests/nope/timeout failed with 404: {"error":"Unknown human request \\"nope\\""}'
    )


async def test_server_validation_errors_are_400(wire: WirePrimitives) -> None:
    with pytest.raises(HitlHttpError) as caught:
        await client_for(wire).request_human(message="x", actions=ACTIONS, channel="nowhere")
    assert caught.value.status == 400
    assert "nowhere" in caught.value.body


BAD_CALLS: list[tuple[str, dict[str, object]]] = [
    ("at least one action", {"message": "x", "actions": []}),
    ("Duplicate action id", {"message": "x", "actions": [{"id": "a"}, {"id": "a"}]}),
    ("requires message when items is absent", {"actions": ACTIONS}),
    ("requires message when items is absent", {"message": "", "actions": ACTIONS}),
    ("at least one item", {"message": "x", "actions": ACTIONS, "items": []}),
    ("items\\[0\\]", {"actions": ACTIONS, "items": [{"nomessage": 1}]}),
    ("Invalid namespace", {"message": "x", "actions": ACTIONS, "namespace": "no spaces"}),
    ("context must be", {"message": "x", "actions": ACTIONS, "context": ["not", "a", "mapping"]}),
    ("JSON-serializable", {"message": "x", "actions": ACTIONS, "context": {"f": object()}}),
    (
        "not found in actions",
        {"message": "x", "actions": ACTIONS, "items": [{"message": "a"}], "defaults_action_id": "z"},
    ),
    ("after must be", {"message": "x", "actions": ACTIONS, "after": 42}),
    ("Invalid timeout", {"message": "x", "actions": ACTIONS, "timeout": "soon"}),
    ("Invalid timeout", {"message": "x", "actions": ACTIONS, "timeout": 0}),
    ("Invalid timeout", {"message": "x", "actions": ACTIONS, "timeout": -5}),
    ("Invalid timeout", {"message": "x", "actions": ACTIONS, "timeout": timedelta(0)}),
    ("Invalid timeout", {"message": "x", "actions": ACTIONS, "timeout": float("nan")}),
    ("remind", {"message": "x", "actions": ACTIONS, "reminders": ["10m"]}),
    ("reminders must be", {"message": "x", "actions": ACTIONS, "reminders": "10m"}),
]


@pytest.mark.parametrize(("error", "call"), BAD_CALLS, ids=[f"{i}-{e}" for i, (e, _) in enumerate(BAD_CALLS)])
async def test_validation_happens_before_any_suspend_or_request(
    wire: WirePrimitives, error: str, call: dict[str, object]
) -> None:
    with pytest.raises(ValidationError, match=error):
        await client_for(wire).wait_for_human(**call)  # type: ignore[call-overload]
    assert wire.suspends == 0 and wire.requests == []


async def test_wait_on_a_pending_validates_before_any_request(wire: WirePrimitives) -> None:
    client = client_for(wire)
    pending = await client.request_human(message="x", actions=ACTIONS)
    sent = len(wire.requests)
    for bad in ({"timeout": "3 days"}, {"timeout": 0}, {"reminders": [object()]}):
        with pytest.raises(ValidationError):
            await client.wait_for_human(pending, **bad)  # type: ignore[call-overload]
    with pytest.raises(ValidationError, match="either a pending request or the options"):
        await client.wait_for_human(pending, message="again")  # type: ignore[call-overload]
    with pytest.raises(ValidationError):
        await client.notify(message="")
    assert len(wire.requests) == sent


async def test_pending_is_plain_data(wire: WirePrimitives) -> None:
    client = client_for(wire)
    pending = await client.request_human(message="x", actions=ACTIONS)
    data = msgspec.json.encode(pending)
    assert json.loads(data) == {
        "id": pending.id,
        "externalRef": pending.external_ref,
        "batch": False,
        "ids": [pending.id],
        "tokens": ["wire-token-1"],
    }
    assert msgspec.json.decode(data, type=Pending) == pending


async def test_a_resume_payload_may_be_json(wire: WirePrimitives) -> None:
    """Engines hand the result over as JSON (a Temporal signal from the TypeScript server, for one)."""
    loop = asyncio.get_running_loop()
    as_json: asyncio.Future[object] = loop.create_future()

    class JsonPrimitives(WirePrimitives):
        def suspend(self):  # type: ignore[no-untyped-def, override]
            self.suspends += 1
            return "json-token", as_json

    prims = JsonPrimitives(wire.hitl)
    client = create_hitl_client(prims, url="http://h", secret="s3cret")
    pending = await client.request_human(message="x", actions=ACTIONS)
    payload = {"type": "RESOLVED", "actionId": "deny", "id": pending.id, "externalRef": "", "feedbacks": {}}
    loop.call_soon(as_json.set_result, payload)
    result = await client.wait_for_human(pending)
    assert result == Resolved(id=pending.id, action_id="deny", external_ref="", feedbacks={})


REFERENCE_FIELDS = {
    "/requests": {"token", "message", "actions", "context", "channel", "namespace", "after"},
    "/batches": {"items", "actions", "message", "channel", "context", "namespace", "defaultsActionId", "after"},
    "/notifications": {"message", "after", "on", "detail", "channel"},
    "/remind": {"kind", "message", "channel", "mode"},
}


async def test_only_reference_compatible_fields_are_sent(wire: WirePrimitives) -> None:
    """Cross-language: what the client sends is exactly REF §1.4's bodies, so the TypeScript server
    accepts it; and the answers it reads are the reference's (`id`, `externalRef`, `batchId`, `ids`,
    `result(s)`, `pending`)."""
    client = client_for(wire)
    single = await client.request_human(message="x", actions=ACTIONS, context={"a": 1}, channel="chat", after="z")
    await client.request_human(actions=ACTIONS, items=[{"message": "a", "defaults": {"subject": "s"}}], message="b")
    await client.notify(message="n", after=single, on="x", channel="chat", detail={"d": 1})
    await client.wait_for_human(single, timeout="1h", reminders=[remind.after("1m"), escalate.to("ops").after("2m")])
    for received in wire.received:
        suffix = "/" + received.path.rsplit("/", 1)[-1]
        if suffix in REFERENCE_FIELDS and received.body:
            assert set(received.json) <= REFERENCE_FIELDS[suffix], received.json
        if suffix == "/batches":
            assert all(set(item) <= {"token", "message", "defaults"} for item in received.json["items"])


async def test_a_late_timer_leaves_no_drift(hitl: Hitl) -> None:
    """With the engine's clock, elapsed time is what the clock says: a timer that fired late (here 30 min
    late) catches up on due reminders, and a deadline already passed times out without another sleep."""
    from datetime import UTC, datetime

    class LateTimers(WirePrimitives):
        now_at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

        def now(self) -> datetime:
            return self.now_at

        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds)
            self.now_at += timedelta(seconds=seconds + 1800)

    late = LateTimers(hitl)
    client = create_hitl_client(late, url="http://h", secret="s3cret")
    result = await client.wait_for_human(
        message="x", actions=ACTIONS, timeout="50m", reminders=[remind.after("10m"), remind.after("20m")]
    )
    assert result.__class__.__name__ == "TimedOut"
    # Woke at 40 min (10 asked + 30 late): both reminders were due; then 10 min asked to the deadline.
    assert late.sleeps == [600.0, 600.0]
    assert len(late.bodies("/remind")) == 2


async def test_a_deadline_passed_during_a_late_timer_times_out_at_once(hitl: Hitl) -> None:
    from datetime import UTC, datetime

    class VeryLate(WirePrimitives):
        now_at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

        def now(self) -> datetime:
            return self.now_at

        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds)
            self.now_at += timedelta(hours=5)

    late = VeryLate(hitl)
    client = create_hitl_client(late, url="http://h", secret="s3cret")
    result = await client.wait_for_human(message="x", actions=ACTIONS, timeout="1h", reminders=[remind.after("10m")])
    assert result.__class__.__name__ == "TimedOut"
    assert late.sleeps == [600.0]
    assert late.bodies("/remind") == []  # past the deadline: no reminder, straight to the timeout
