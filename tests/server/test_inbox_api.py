"""The HTTP inbox API (SPEC §12): every route and status, through the ASGI app, on every State."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hitl_streams import State, StreamState
from hitl_streams.reviewers import ReviewerDirectory
from hitl_streams.server import CallbackResolver, Hitl, RetryPolicy
from hitl_streams.server.inbox_settings import InboxSettings
from hitl_streams.server.wire import parse_create_batch, parse_create_request
from hitl_streams.testing.recording import RecordingAdapter

from .conftest import resume_queue_for
from .support import Resumed

ACTIONS: list[dict[str, Any]] = [
    {
        "id": "approve",
        "fields": {
            "subject": {"kind": "text", "label": "Subject", "default": "Hi"},
            "tone": {"kind": "select", "label": "Tone", "options": ["warm", "dry"], "default": "warm"},
        },
    },
    {"id": "deny", "fields": {"reason": {"kind": "textarea", "label": "Reason"}}},
]
API = "/inbox/api"


def make_hitl(state: State, resumed: Resumed, chat: RecordingAdapter, inbox: Any = True) -> Hitl:
    return Hitl(
        state=state,
        resolver=CallbackResolver(resumed),
        adapters=[chat],
        secret="internal-secret",
        retry=RetryPolicy(initial=0.01, maximum=0.05, jitter=0),
        resume_queue=resume_queue_for(state),
        inbox=inbox,
    )


@pytest.fixture
async def hitl(state: State, resumed: Resumed, chat: RecordingAdapter) -> AsyncIterator[Hitl]:
    async with make_hitl(state, resumed, chat) as server:
        yield server


@pytest.fixture
async def http(hitl: Hitl) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url="http://hitl.test") as client:
        yield client


def reviewers_of(hitl: Hitl) -> ReviewerDirectory:
    directory = getattr(hitl.state, "reviewers", None)
    assert isinstance(directory, ReviewerDirectory)
    return directory


async def bearer(hitl: Hitl, name: str, namespaces: list[str], email: str | None = None) -> dict[str, str]:
    reviewers = reviewers_of(hitl)
    if await reviewers.get(name) is None:
        await reviewers.add(name, namespaces=namespaces, email=email)
    token = (await reviewers.issue(name, "token")).token
    return {"authorization": f"Bearer {token}"}


async def create(hitl: Hitl, token: str, namespace: str = "billing", **extra: Any) -> str:
    body = parse_create_request(
        {"token": token, "message": f"Refund {token}?", "actions": ACTIONS, "namespace": namespace, **extra}
    )
    return (await hitl.core.create_request(body)).id


async def create_batch(hitl: Hitl, namespace: str = "billing") -> tuple[str, list[str]]:
    body = parse_create_batch(
        {
            "items": [{"token": "b-1", "message": "one"}, {"token": "b-2", "message": "two"}],
            "actions": ACTIONS,
            "message": "Both?",
            "namespace": namespace,
        }
    )
    anchor = await hitl.core.create_batch(body)
    return anchor.batch_id, anchor.ids


# --- opt-in and authentication -----------------------------------------------------------------------------
async def test_without_the_inbox_the_routes_do_not_exist(
    state: State, resumed: Resumed, chat: RecordingAdapter
) -> None:
    server = make_hitl(state, resumed, chat, inbox=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.asgi), base_url="http://t") as client:
        for path in (f"{API}/requests", f"{API}/me", "/.well-known/hitl/v1/inbox/api/requests"):
            response = await client.get(path)
            assert response.status_code == 404, path


async def test_401_without_or_with_bad_credentials(hitl: Hitl, http: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"authorization": "Bearer internal-secret"},  # the workflows' secret is not a reviewer's
        {"authorization": "Bearer hitl_rt_" + "A" * 43},
        {"authorization": "Basic YWRhOnB3"},
        {"cookie": "hitl_session=hitl_ss_" + "A" * 43},
    ):
        response = await http.get(f"{API}/requests", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == 'Bearer realm="hitl-inbox"'
        assert "error" in response.json()


async def test_me_and_the_base_path_mount(hitl: Hitl, http: httpx.AsyncClient) -> None:
    auth = await bearer(hitl, "ada", ["billing", "ops"], email="ada@example.com")
    for path in (f"{API}/me", f"/.well-known/hitl/v1{API}/me"):
        response = await http.get(path, headers=auth)
        assert response.status_code == 200
        body = response.json()
        assert (body["name"], body["email"], body["namespaces"]) == ("ada", "ada@example.com", ["billing", "ops"])


async def test_wrong_method_and_unknown_route(hitl: Hitl, http: httpx.AsyncClient) -> None:
    auth = await bearer(hitl, "ada", ["billing"])
    assert (await http.post(f"{API}/requests", headers=auth, json={})).status_code == 405
    response = await http.get(f"{API}/requests/x/resolve", headers=auth)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert (await http.get(f"{API}/nothing", headers=auth)).status_code == 404


# --- reading -----------------------------------------------------------------------------------------------
async def test_list_and_count_only_show_the_reviewers_namespaces(hitl: Hitl, http: httpx.AsyncClient) -> None:
    mine = [await create(hitl, f"t-{i}", "billing") for i in range(3)] + [await create(hitl, "t-ops", "ops")]
    secret = await create(hitl, "t-hr", "hr")
    auth = await bearer(hitl, "ada", ["billing", "ops"])
    response = await http.get(f"{API}/requests", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert sorted(item["id"] for item in body["items"]) == sorted(mine) and "nextCursor" not in body
    assert all("token" not in item for item in body["items"])  # the engine's credential stays out
    assert (await http.get(f"{API}/requests/count", headers=auth)).json() == {"count": 4}
    assert (await http.get(f"{API}/requests/count?namespace=ops", headers=auth)).json() == {"count": 1}
    # A namespace outside the grant: nothing, the same as an empty one.
    outside = await http.get(f"{API}/requests?namespace=hr", headers=auth)
    assert outside.status_code == 200 and outside.json() == {"items": []}
    assert (await http.get(f"{API}/requests/count?namespace=hr", headers=auth)).json() == {"count": 0}
    assert secret not in response.text
    everything = await bearer(hitl, "lead", ["*"])
    assert (await http.get(f"{API}/requests/count", headers=everything)).json() == {"count": 5}


async def test_paging_across_namespaces_walks_every_item_once(hitl: Hitl, http: httpx.AsyncClient) -> None:
    ids = {await create(hitl, f"t-{i}", "billing" if i % 2 else "ops") for i in range(5)}
    await create(hitl, "t-hr", "hr")
    auth = await bearer(hitl, "ada", ["billing", "ops"])
    seen: list[str] = []
    cursor = ""
    while True:
        response = await http.get(f"{API}/requests", params={"limit": "2", "cursor": cursor}, headers=auth)
        assert response.status_code == 200
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        if "nextCursor" not in page:
            break
        cursor = page["nextCursor"]
    assert len(seen) == len(set(seen)) == 5 and set(seen) == ids


async def test_bad_query_is_400(hitl: Hitl, http: httpx.AsyncClient) -> None:
    auth = await bearer(hitl, "ada", ["billing"])
    for query in ("status=open", "limit=-1", "limit=x", "cursor=%%%", "namespace=bad%20ns"):
        response = await http.get(f"{API}/requests?{query}", headers=auth)
        assert response.status_code == 400, query


async def test_get_a_request_in_scope_404_outside(hitl: Hitl, http: httpx.AsyncClient) -> None:
    mine, other = await create(hitl, "t-1", "billing"), await create(hitl, "t-2", "hr")
    auth = await bearer(hitl, "ada", ["billing"])
    response = await http.get(f"{API}/requests/{mine}", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["namespace"]) == (mine, "pending", "billing") and "token" not in body
    for missing in (other, "nope"):
        response = await http.get(f"{API}/requests/{missing}", headers=auth)
        assert response.status_code == 404 and response.json() == {"error": f'Unknown human request "{missing}"'}
    assert (await http.get(f"{API}/requests/{'x' * 600}", headers=auth)).status_code == 400


# --- deciding ----------------------------------------------------------------------------------------------
async def test_resolve_records_the_reviewer_and_resumes_the_workflow(
    hitl: Hitl, http: httpx.AsyncClient, resumed: Resumed
) -> None:
    request_id = await create(hitl, "t-1")
    auth = await bearer(hitl, "ada", ["billing"], email="ada@example.com")
    ada = await reviewers_of(hitl).get("ada")
    assert ada is not None
    response = await http.post(
        f"{API}/requests/{request_id}/resolve", headers=auth, json={"actionId": "approve", "feedbacks": {"tone": "dry"}}
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert result == {
        "type": "RESOLVED",
        "actionId": "approve",
        "id": request_id,
        "externalRef": f"chat/{request_id}",
        "by": {"id": ada.id, "name": "ada", "email": "ada@example.com"},
        "feedbacks": {"subject": "Hi", "tone": "dry"},
        "edited": True,
    }
    await resumed.wait_for(1)
    token, resumed_with = resumed.calls[0]
    assert token == "t-1" and resumed_with.by is not None and resumed_with.by.name == "ada"  # type: ignore[union-attr]
    audit = (await http.get(f"{API}/requests/{request_id}/audit", headers=auth)).json()["items"]
    resolved = [item["event"] for item in audit if item["event"]["type"] == "request.resolved"]
    assert resolved[0]["actor"] == {"id": ada.id, "name": "ada", "email": "ada@example.com"}
    assert all("token" not in item["event"].get("request", {}) for item in audit)


async def test_the_body_cannot_set_by(hitl: Hitl, http: httpx.AsyncClient) -> None:
    request_id = await create(hitl, "t-1")
    auth = await bearer(hitl, "ada", ["billing"])
    response = await http.post(
        f"{API}/requests/{request_id}/resolve", headers=auth, json={"actionId": "approve", "by": {"name": "Mallory"}}
    )
    assert response.status_code == 400 and '"by" cannot be set' in response.json()["error"]
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.status == "pending"


async def test_same_decision_again_returns_the_stored_result_and_another_is_409(
    hitl: Hitl, http: httpx.AsyncClient
) -> None:
    request_id = await create(hitl, "t-1")
    ada, bob = await bearer(hitl, "ada", ["billing"]), await bearer(hitl, "bob", ["billing"])
    decision = {"actionId": "deny", "feedbacks": {"reason": "dup"}}
    first = await http.post(f"{API}/requests/{request_id}/resolve", headers=ada, json=decision)
    again = await http.post(f"{API}/requests/{request_id}/resolve", headers=bob, json=decision)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert again.json()["result"]["by"]["name"] == "ada"
    conflict = await http.post(f"{API}/requests/{request_id}/resolve", headers=bob, json={"actionId": "approve"})
    assert conflict.status_code == 409
    assert conflict.json() == {"error": f'Human request "{request_id}" is already resolved'}


async def test_invalid_feedback_is_400_with_every_field_error(hitl: Hitl, http: httpx.AsyncClient) -> None:
    request_id = await create(hitl, "t-1")
    auth = await bearer(hitl, "ada", ["billing"])
    response = await http.post(
        f"{API}/requests/{request_id}/resolve",
        headers=auth,
        json={"actionId": "approve", "feedbacks": {"subject": 3, "tone": "loud", "extra": "x"}},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["fields"] == {
        "extra": 'Unknown feedback key: "extra"',
        "subject": 'Feedback "subject" must be a string',
        "tone": 'Feedback "tone" must be one of: warm, dry',
    }
    missing = await http.post(f"{API}/requests/{request_id}/resolve", headers=auth, json={"actionId": "deny"})
    assert missing.status_code == 400 and missing.json()["fields"] == {"reason": 'Missing value for feedback "reason"'}
    unknown = await http.post(f"{API}/requests/{request_id}/resolve", headers=auth, json={"actionId": "ship"})
    assert unknown.status_code == 400 and unknown.json() == {"error": 'Unknown action "ship".'}
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.status == "pending"


async def test_resolve_outside_scope_is_404_and_decides_nothing(hitl: Hitl, http: httpx.AsyncClient) -> None:
    request_id = await create(hitl, "t-1", "hr")
    auth = await bearer(hitl, "ada", ["billing"])
    response = await http.post(f"{API}/requests/{request_id}/resolve", headers=auth, json={"actionId": "approve"})
    assert response.status_code == 404
    record = await hitl.inbox.get(request_id)
    assert record is not None and record.status == "pending"


async def test_malformed_posts(hitl: Hitl, http: httpx.AsyncClient) -> None:
    request_id = await create(hitl, "t-1")
    auth = await bearer(hitl, "ada", ["billing"])
    url = f"{API}/requests/{request_id}/resolve"
    form = await http.post(url, headers=auth, data={"actionId": "approve"})  # what a cross-site form sends
    assert form.status_code == 415
    bad = await http.post(url, headers={**auth, "content-type": "application/json"}, content=b"{")
    assert bad.status_code == 400 and bad.json() == {"error": "Invalid JSON body"}
    for body in ([], {"actionId": 3}, {"actionId": "approve", "feedbacks": []}, {"actionId": "approve", "x": 1}):
        assert (await http.post(url, headers=auth, json=body)).status_code == 400, body
    huge = await http.post(url, headers=auth, json={"actionId": "approve", "feedbacks": {"subject": "x" * (2 << 20)}})
    assert huge.status_code == 413


# --- batches, threads --------------------------------------------------------------------------------------
async def test_batch_get_and_resolve(hitl: Hitl, http: httpx.AsyncClient, resumed: Resumed) -> None:
    batch_id, ids = await create_batch(hitl)
    auth = await bearer(hitl, "ada", ["billing"])
    outsider = await bearer(hitl, "eve", ["hr"])
    view = await http.get(f"{API}/batches/{batch_id}", headers=auth)
    assert view.status_code == 200
    assert view.json()["batch"]["id"] == batch_id and [i["id"] for i in view.json()["items"]] == ids
    assert (await http.get(f"{API}/batches/{batch_id}", headers=outsider)).status_code == 404
    assert (await http.get(f"{API}/batches/nope", headers=auth)).status_code == 404
    decisions = [
        {"requestId": ids[0], "actionId": "approve"},
        {"requestId": ids[1], "actionId": "deny", "feedbacks": {"reason": "no"}},
    ]
    url = f"{API}/batches/{batch_id}/resolve"
    assert (await http.post(url, headers=outsider, json={"decisions": decisions})).status_code == 404
    invalid = await http.post(
        url, headers=auth, json={"decisions": [decisions[0], {"requestId": ids[1], "actionId": "deny"}]}
    )
    assert invalid.status_code == 400
    assert invalid.json()["fields"] == {ids[1]: {"reason": 'Missing value for feedback "reason"'}}
    assert (await http.post(url, headers=auth, json={"decisions": decisions, "by": {"name": "x"}})).status_code == 400
    response = await http.post(url, headers=auth, json={"decisions": decisions})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["actionId"] for r in results] == ["approve", "deny"] and {r["by"]["name"] for r in results} == {"ada"}
    await resumed.wait_for(2)
    again = await http.post(url, headers=auth, json={"decisions": decisions})
    assert again.status_code == 200 and again.json() == response.json()
    flipped = [{**decisions[0], "actionId": "deny", "feedbacks": {"reason": "x"}}, decisions[1]]
    assert (await http.post(url, headers=auth, json={"decisions": flipped})).status_code == 409


async def test_thread_timeline_in_scope_only(hitl: Hitl, http: httpx.AsyncClient) -> None:
    request_id, other = await create(hitl, "t-1"), await create(hitl, "t-2", "hr")
    for subject in (request_id, other):
        await http.post(
            f"/.well-known/hitl/v1/requests/{subject}/remind",
            headers={"authorization": "Bearer internal-secret"},
            json={"message": "Still waiting"},
        )
    auth = await bearer(hitl, "ada", ["billing"])
    response = await http.get(f"{API}/threads/{request_id}/timeline", headers=auth)
    assert response.status_code == 200
    assert [entry["message"] for entry in response.json()["items"]] == ["Still waiting"]
    for missing in (other, "nope"):
        assert (await http.get(f"{API}/threads/{missing}/timeline", headers=auth)).status_code == 404
        assert (await http.get(f"{API}/requests/{missing}/audit", headers=auth)).status_code == 404


# --- sessions, SSO, revocation -----------------------------------------------------------------------------
async def test_a_sign_in_link_gives_a_session_once(hitl: Hitl, http: httpx.AsyncClient) -> None:
    assert hitl.reviewer_auth is not None
    await reviewers_of(hitl).add("ada", namespaces=["billing"])
    link = await reviewers_of(hitl).issue("ada", "link")
    signed = await hitl.reviewer_auth.sign_in(link.token)
    assert signed is not None
    principal, session = signed
    assert principal.name == "ada" and principal.namespaces == frozenset({"billing"})
    assert await hitl.reviewer_auth.sign_in(link.token) is None
    cookie = {"cookie": f"other=1; hitl_session={session}"}
    assert (await http.get(f"{API}/me", headers=cookie)).json()["name"] == "ada"
    await hitl.reviewer_auth.sign_out(session)
    assert (await http.get(f"{API}/me", headers=cookie)).status_code == 401


async def test_proxy_header_only_when_configured(state: State, resumed: Resumed, chat: RecordingAdapter) -> None:
    plain = make_hitl(state, resumed, chat)
    await reviewers_of(plain).add("ada", namespaces=["billing"], email="ada@example.com")
    await reviewers_of(plain).add("bob", namespaces=["billing"])
    claim = {"x-forwarded-email": "ada@example.com"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain.asgi), base_url="http://t") as client:
        assert (await client.get(f"{API}/me", headers=claim)).status_code == 401
    sso = make_hitl(state, resumed, chat, inbox=InboxSettings(trust_proxy_header="X-Forwarded-Email"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sso.asgi), base_url="http://t") as client:
        assert (await client.get(f"{API}/me", headers=claim)).json()["name"] == "ada"
        assert (await client.get(f"{API}/me", headers={"x-forwarded-email": "ADA@example.com"})).status_code == 200
        assert (await client.get(f"{API}/me", headers={"x-forwarded-email": "bob"})).json()["name"] == "bob"
        for unknown in ("eve@example.com", "eve", "not a name"):
            assert (await client.get(f"{API}/me", headers={"x-forwarded-email": unknown})).status_code == 401
        assert (await client.get(f"{API}/me", headers={"x-forwarded-user": "ada@example.com"})).status_code == 401
        # The proxy's own Authorization header (an OIDC token, not ours) does not get in the way.
        with_jwt = {**claim, "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"}
        assert (await client.get(f"{API}/me", headers=with_jwt)).json()["name"] == "ada"
        await reviewers_of(sso).revoke("ada")
        assert (await client.get(f"{API}/me", headers=claim)).status_code == 401


async def test_a_revoked_reviewer_is_refused_at_once(hitl: Hitl, http: httpx.AsyncClient) -> None:
    auth = await bearer(hitl, "ada", ["billing"])
    assert (await http.get(f"{API}/me", headers=auth)).status_code == 200
    await reviewers_of(hitl).revoke("ada")
    assert (await http.get(f"{API}/me", headers=auth)).status_code == 401


@pytest.mark.redis
async def test_a_revocation_holds_at_once_on_another_replica(
    redis: Redis, table_name: str, resumed: Resumed, chat: RecordingAdapter
) -> None:
    one = make_hitl(StreamState(redis, table_name=table_name), resumed, chat)
    two = make_hitl(StreamState(redis, table_name=table_name), resumed, chat)
    request_id = await create(one, "t-1")
    auth = await bearer(one, "ada", ["billing"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=two.asgi), base_url="http://t") as client:
        assert (await client.get(f"{API}/requests/{request_id}", headers=auth)).status_code == 200
        await reviewers_of(one).revoke("ada")
        assert (await client.get(f"{API}/requests/{request_id}", headers=auth)).status_code == 401
        response = await client.post(f"{API}/requests/{request_id}/resolve", headers=auth, json={"actionId": "approve"})
        assert response.status_code == 401
    report = await one.state.verify()  # type: ignore[attr-defined]
    assert report.clean, report.to_dict()


def test_inbox_needs_a_state_that_keeps_reviewers(resumed: Resumed) -> None:
    class Bare:
        pass

    from hitl_streams import InMemoryState

    state = InMemoryState()
    state.reviewers = Bare()  # type: ignore[assignment]
    with pytest.raises(ValueError, match="keeps no reviewers"):
        Hitl(state=state, inbox=True)
    with pytest.raises(ValueError):
        InboxSettings(trust_proxy_header="bad header")
    with pytest.raises(ValueError):
        InboxSettings(public_url="ftp://x")
