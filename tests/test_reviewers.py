"""Reviewers as events: grants, revocations, credentials stored hashed, one-time sign-in links, sessions,
on InMemoryState and StreamState; rebuild and verify stay clean."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from hitl_streams import InMemoryState, Reviewer, StreamState, ValidationError
from hitl_streams.history.events import event_to_dict
from hitl_streams.reviewers import (
    DuplicateReviewerError,
    ReviewerDirectory,
    RevokedReviewerError,
    UnknownReviewerError,
    hash_token,
)
from hitl_streams.testing.snapshot import snapshot


@pytest.fixture(params=["memory", "redis-streams"])
def state(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return InMemoryState()
    return StreamState(request.getfixturevalue("redis"), table_name=request.getfixturevalue("table_name"))


def directory(state: Any) -> ReviewerDirectory:
    reviewers = state.reviewers
    assert isinstance(reviewers, ReviewerDirectory)
    return reviewers


async def test_add_get_list_and_the_grant_is_an_event(state: Any) -> None:
    reviewers = directory(state)
    lead = Reviewer(id="cli", name="ops")
    ada = await reviewers.add("ada", namespaces=["billing", "ops"], email="Ada@Example.com", by=lead)
    assert (ada.name, ada.email, ada.namespaces, ada.active) == ("ada", "ada@example.com", ["billing", "ops"], True)
    assert ada.id.startswith("rv_")
    assert await reviewers.get("ada") == ada
    assert await reviewers.get_by_id(ada.id) == ada
    assert await reviewers.get_by_email("ADA@example.com") == ada
    assert await reviewers.get("bob") is None
    await reviewers.add("bob", namespaces=["*"])
    assert [r.name for r in await reviewers.list()] == ["ada", "bob"]
    trail = [event_to_dict(r.event) for r in await state.audit(ada.id)]
    assert [e["type"] for e in trail] == ["reviewer.added"]
    assert trail[0]["actor"] == {"id": "cli", "name": "ops"}
    assert trail[0]["reviewer"]["namespaces"] == ["billing", "ops"]


async def test_bad_input_and_duplicates(state: Any) -> None:
    reviewers = directory(state)
    with pytest.raises(ValidationError):
        await reviewers.add("bad name", namespaces=["a"])
    with pytest.raises(ValidationError):
        await reviewers.add("ada", namespaces=["no spaces"])
    with pytest.raises(ValidationError):
        await reviewers.add("ada", namespaces=[])
    with pytest.raises(ValidationError):
        await reviewers.add("ada", namespaces=["a"], email="not-an-email")
    await reviewers.add("ada", namespaces=["a"])
    with pytest.raises(DuplicateReviewerError):
        await reviewers.add("ada", namespaces=["b"])
    with pytest.raises(UnknownReviewerError):
        await reviewers.revoke("nobody")
    with pytest.raises(UnknownReviewerError):
        await reviewers.issue("nobody", "token")


async def test_tokens_are_stored_hashed_and_verified(state: Any) -> None:
    reviewers = directory(state)
    ada = await reviewers.add("ada", namespaces=["a"])
    issued = await reviewers.issue("ada", "token")
    assert issued.token.startswith("hitl_rt_") and len(issued.token) == 8 + 43
    assert issued.credential.id == hash_token(issued.token)[:16]
    assert (await reviewers.verify(issued.token, ("token",))) == msgspec.structs.replace(
        ada, current_token=issued.credential.id
    )
    assert await reviewers.verify(issued.token, ("session",)) is None  # wrong kind
    assert await reviewers.verify(issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"), ("token",)) is None
    assert await reviewers.verify("garbage", ("token",)) is None
    # One API token per reviewer: the next one retires it (how a leaked token is rotated).
    following = await reviewers.issue("ada", "token")
    assert await reviewers.verify(issued.token, ("token",)) is None
    current = await reviewers.verify(following.token, ("token",))
    assert current is not None and current.current_token == following.credential.id
    link = await reviewers.issue("ada", "link")  # links and sessions are not tokens: no effect
    assert await reviewers.sign_in(link.token) is not None
    assert await reviewers.verify(following.token, ("token",)) is not None


async def test_a_link_signs_in_once_and_sessions_end(state: Any) -> None:
    reviewers = directory(state)
    ada = await reviewers.add("ada", namespaces=["a"])
    link = await reviewers.issue("ada", "link")
    assert link.token.startswith("hitl_sl_") and link.credential.expires_at is not None
    assert await reviewers.verify(link.token, ("token", "session")) is None  # a link is not a login
    first = await reviewers.sign_in(link.token)
    assert first is not None
    reviewer, session = first
    assert reviewer == ada and session.token.startswith("hitl_ss_")
    assert await reviewers.sign_in(link.token) is None  # once
    assert await reviewers.verify(session.token, ("session",)) == ada
    await reviewers.sign_out(session.token)
    assert await reviewers.verify(session.token, ("session",)) is None
    types = [event_to_dict(r.event)["type"] for r in await state.audit(ada.id)]
    assert types == ["reviewer.added", "reviewer.credential_issued", "reviewer.signed_in", "reviewer.signed_out"]


async def test_concurrent_sign_ins_with_one_link_make_one_session(state: Any) -> None:
    reviewers = directory(state)
    await reviewers.add("ada", namespaces=["a"])
    link = await reviewers.issue("ada", "link")
    outcomes = await asyncio.gather(*(reviewers.sign_in(link.token) for _ in range(8)))
    assert sum(o is not None for o in outcomes) == 1


async def test_revocation_stops_every_credential_and_can_be_re_added(state: Any) -> None:
    reviewers = directory(state)
    await reviewers.add("ada", namespaces=["a"])
    token = await reviewers.issue("ada", "token")
    link = await reviewers.issue("ada", "link")
    signed = await reviewers.sign_in((await reviewers.issue("ada", "link")).token)
    assert signed is not None
    revoked = await reviewers.revoke("ada", by=Reviewer(name="lead"))
    assert not revoked.active and revoked.revoked_at is not None
    assert await reviewers.revoke("ada") == revoked  # idempotent
    assert await reviewers.verify(token.token, ("token",)) is None
    assert await reviewers.verify(signed[1].token, ("session",)) is None
    assert await reviewers.sign_in(link.token) is None
    with pytest.raises(RevokedReviewerError):
        await reviewers.issue("ada", "token")
    again = await reviewers.add("ada", namespaces=["b"])
    assert again.id != revoked.id and again.namespaces == ["b"]
    assert await reviewers.verify(token.token, ("token",)) is None  # old credentials stay dead
    assert [r.name for r in await reviewers.list()] == ["ada", "ada"]


@pytest.mark.redis
async def test_redis_holds_no_raw_token_and_rebuild_reproduces_everything(redis: Redis, table_name: str) -> None:
    state = StreamState(redis, table_name=table_name)
    reviewers = state.reviewers
    await reviewers.add("ada", namespaces=["a", "b"], email="ada@example.com")
    tokens = [(await reviewers.issue("ada", "token")).token, (await reviewers.issue("ada", "link")).token]
    link = (await reviewers.issue("ada", "link")).token
    signed = await reviewers.sign_in(link)
    assert signed is not None
    tokens += [link, signed[1].token]
    await reviewers.add("bob", namespaces=["*"])
    await reviewers.revoke("bob")
    dumped: list[Any] = []
    async for key in redis.scan_iter(match=state.keys.prefix + ":*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            dumped.append(await redis.get(key))
        elif kind == "stream":
            dumped += [fields[b"event"] for _, fields in await redis.xrange(key) or []]
        elif kind == "set":
            dumped += list(await redis.smembers(key))
        elif kind == "list":
            dumped += await redis.lrange(key, 0, -1)
        elif kind == "hash":
            dumped += [item for pair in (await redis.hgetall(key)).items() for item in pair]
        elif kind == "zset":
            dumped += await redis.zrange(key, 0, -1)
        dumped.append(key)
    blob = b"\n".join(dumped)
    for token in tokens:
        assert token.encode() not in blob
        assert token.split("_", 2)[2].encode() not in blob
        assert hash_token(token).encode() in blob  # stored as its hash
    session_key = state.keys.credential(hash_token(signed[1].token))
    assert 0 < await redis.pttl(session_key) <= 12 * 3600 * 1000
    live = await snapshot(redis, state.keys)
    assert (await state.verify()).clean
    await state.rebuild()
    assert await snapshot(redis, state.keys) == live
    assert 0 < await redis.pttl(session_key) <= 12 * 3600 * 1000  # the replay gives the same deadline
    assert await reviewers.verify(signed[1].token, ("session",)) is not None


@pytest.mark.redis
async def test_a_revocation_holds_at_once_for_another_replica(redis: Redis, table_name: str) -> None:
    one, two = StreamState(redis, table_name=table_name), StreamState(redis, table_name=table_name)
    await one.reviewers.add("ada", namespaces=["a"])
    token = (await one.reviewers.issue("ada", "token")).token
    assert await two.reviewers.verify(token, ("token",)) is not None
    await one.reviewers.revoke("ada")
    assert await two.reviewers.verify(token, ("token",)) is None


@pytest.mark.cluster
async def test_on_redis_cluster_every_reviewer_key_shares_the_prefix_slot(
    redis_cluster_client: Any, table_name: str
) -> None:
    state = StreamState(redis_cluster_client, table_name=table_name, cluster=True)
    try:
        await state.reviewers.add("ada", namespaces=["a"], email="ada@example.com")
        signed = await state.reviewers.sign_in((await state.reviewers.issue("ada", "link")).token)
        assert signed is not None
        token = (await state.reviewers.issue("ada", "token")).token
        assert await state.reviewers.verify(token, ("token",)) is not None
        await state.reviewers.revoke("ada")
        assert await state.reviewers.verify(signed[1].token, ("session",)) is None
        assert (await state.verify()).clean
        names = [n async for n in redis_cluster_client.scan_iter(match=f"{state.keys.prefix}*")]
        assert {await redis_cluster_client.cluster_keyslot(n) for n in names} == {
            await redis_cluster_client.cluster_keyslot(state.keys.events)
        }
    finally:
        names = [n async for n in redis_cluster_client.scan_iter(match=f"{state.keys.prefix}*")]
        for name in names:
            await redis_cluster_client.delete(name)


async def test_an_expired_link_does_not_sign_in_and_history_stays_consistent(
    state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_streams.history import reviewer_rules

    monkeypatch.setattr(reviewer_rules, "LINK_TTL_SECONDS", 0)  # expires as it is issued
    await directory(state).add("ada", namespaces=["a"])
    link = await directory(state).issue("ada", "link")
    assert await directory(state).sign_in(link.token) is None
    if isinstance(state, StreamState):
        assert not await state.redis.exists(state.keys.credential(hash_token(link.token)))  # its TTL ran out
        assert (await state.verify()).clean  # a replay gives it the same past deadline: gone there too
