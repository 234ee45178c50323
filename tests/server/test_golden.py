"""Golden bodies: byte for byte what the TypeScript workflow client sends (REF §6.1-§6.4) and what it gets
back from the reference server (REF §1.4). Ids are random, so the expected replies are templates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hitl_streams import Reviewer
from hitl_streams.server import CallbackResolver, Hitl

from .support import Resumed

SECRET = "s3cret"
BASE = "http://hitl.test"
PATH = "/.well-known/hitl/v1"

# `JSON.stringify` of the client's bodies: key order as the client builds them, undefined keys dropped.
CREATE = (
    b'{"token":"test-token-1","message":"Deploy v2?","actions":[{"id":"approve","label":"Ship","fields":'
    b'{"note":{"kind":"text","label":"Note","default":"ok"},"env":{"kind":"select","label":"Env",'
    b'"options":["staging","prod"],"default":"prod"}}},{"id":"deny","style":"danger"}],"context":{"pr":42},'
    b'"namespace":"ops"}'
)
BATCH = (
    b'{"message":"Review","actions":[{"id":"approve","fields":{"note":{"kind":"text","label":"Note",'
    b'"default":"ok"}}}],"items":[{"token":"test-token-2","message":"a"},{"token":"test-token-3","message":"b",'
    b'"defaults":{"note":"custom"}}]}'
)
REMIND = b'{"kind":"remind"}'
ESCALATE = b'{"kind":"escalate","channel":"inbox","message":"Still open","mode":"notify"}'
TIMEOUT = b"{}"


@pytest.fixture
async def hitl(resumed: Resumed) -> AsyncIterator[Hitl]:
    async with Hitl(resolver=CallbackResolver(resumed), secret=SECRET) as server:
        yield server


@pytest.fixture
async def ts_client(hitl: Hitl) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hitl.asgi), base_url=BASE) as client:
        yield client


async def call(client: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    """What `callApi` does: POST base + basePath + path with these two headers and the body."""
    headers = {"content-type": "application/json", "authorization": f"Bearer {SECRET}"}
    return await client.post(f"{BASE}{PATH}{path}", content=body, headers=headers)


async def test_create_and_time_out(ts_client: httpx.AsyncClient) -> None:
    created = await call(ts_client, "/requests", CREATE)
    assert created.status_code == 201
    request_id = created.json()["id"]
    assert created.content == b'{"id":"%s","externalRef":"%s"}' % (request_id.encode(), request_id.encode())
    assert created.headers["content-type"] == "application/json"

    remind = await call(ts_client, f"/requests/{request_id}/remind", REMIND)
    assert (remind.status_code, remind.content) == (200, b'{"pending":true}')
    escalate = await call(ts_client, f"/requests/{request_id}/remind", ESCALATE)
    assert (escalate.status_code, escalate.content) == (200, b'{"pending":true}')

    timed_out = await call(ts_client, f"/requests/{request_id}/timeout", TIMEOUT)
    rid = request_id.encode()
    assert (timed_out.status_code, timed_out.content) == (
        200,
        b'{"result":{"type":"TIMED_OUT","id":"%s","externalRef":"%s"}}' % (rid, rid),
    )
    remind = await call(ts_client, f"/requests/{request_id}/remind", REMIND)
    assert remind.content == b'{"pending":false}'


async def test_a_decided_request_replies_in_the_reference_key_order(ts_client: httpx.AsyncClient, hitl: Hitl) -> None:
    created = await call(ts_client, "/requests", CREATE)
    request_id = created.json()["id"]
    await hitl.inbox.resolve(
        request_id, action_id="approve", feedbacks={"note": "changed"}, by=Reviewer(id="u1", name="Ada")
    )
    reply = await call(ts_client, f"/requests/{request_id}/timeout", TIMEOUT)
    rid = request_id.encode()
    assert reply.content == (
        b'{"result":{"type":"RESOLVED","actionId":"approve","id":"%s","externalRef":"%s",'
        b'"by":{"id":"u1","name":"Ada"},"feedbacks":{"note":"changed","env":"prod"},"edited":true}}' % (rid, rid)
    )
    denied_id = (await call(ts_client, "/requests", CREATE.replace(b"test-token-1", b"test-token-9"))).json()["id"]
    await hitl.inbox.resolve(denied_id, action_id="deny")
    reply = await call(ts_client, f"/requests/{denied_id}/timeout", TIMEOUT)
    did = denied_id.encode()
    assert reply.content == (
        b'{"result":{"type":"RESOLVED","actionId":"deny","id":"%s","externalRef":"%s","feedbacks":{}}}' % (did, did)
    )


async def test_batch_create_and_time_out(ts_client: httpx.AsyncClient) -> None:
    created = await call(ts_client, "/batches", BATCH)
    assert created.status_code == 201
    batch_id = created.json()["batchId"].encode()
    assert created.content == b'{"batchId":"%s","ids":["%s:0","%s:1"],"externalRef":"%s"}' % (
        batch_id,
        batch_id,
        batch_id,
        batch_id,
    )
    reply = await call(ts_client, f"/batches/{batch_id.decode()}/timeout", TIMEOUT)
    assert reply.content == (
        b'{"results":[{"type":"TIMED_OUT","id":"%s:0","externalRef":"%s"},'
        b'{"type":"TIMED_OUT","id":"%s:1","externalRef":"%s"}]}' % (batch_id, batch_id, batch_id, batch_id)
    )
    assert (await call(ts_client, f"/batches/{batch_id.decode()}/remind", REMIND)).content == b'{"pending":false}'


async def test_notifications(ts_client: httpx.AsyncClient) -> None:
    standalone = await call(ts_client, "/notifications", b'{"message":"Deploy started","detail":{"sha":"abc"}}')
    assert standalone.status_code == 200
    note_id = standalone.json()["id"].encode()
    assert standalone.content == b'{"id":"%s","externalRef":""}' % note_id
    chained = await call(ts_client, "/notifications", b'{"message":"Done","after":{"id":"%s"}}' % note_id)
    assert chained.status_code == 200 and chained.json()["externalRef"] == ""


async def test_errors_are_json_objects_with_one_error_key(ts_client: httpx.AsyncClient) -> None:
    replies = [
        (await call(ts_client, "/requests", b"{"), 400, b'{"error":"Invalid JSON body"}'),
        (
            await call(ts_client, "/requests", b'{"token":"t"}'),
            400,
            b'{"error":"token, message, and a non-empty actions array are required"}',
        ),
        (
            await call(ts_client, "/requests/nope/timeout", TIMEOUT),
            404,
            b'{"error":"Unknown human request \\"nope\\""}',
        ),
        (await call(ts_client, "/batches/nope/timeout", TIMEOUT), 404, b'{"error":"Unknown batch \\"nope\\""}'),
        (await ts_client.post(f"{PATH}/requests", content=CREATE), 401, b'{"error":"Unauthorized"}'),
        (await ts_client.get(f"{PATH}/requests"), 405, b'{"error":"Method not allowed"}'),
        (await call(ts_client, "/unknown", b"{}"), 404, b'{"error":"Not found"}'),
    ]
    for response, status, body in replies:
        assert (response.status_code, response.content) == (status, body)
        assert response.headers["content-type"] == "application/json"
