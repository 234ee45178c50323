"""A TypeScript `IoredisState` deployment written with raw Redis commands, key for key as REF §4.2 lays it
out: what `adopt` takes over. Includes the shapes the TypeScript SDK left behind over its history: a legacy
action object (REF §5.10), a record without a namespace, a resolved record re-encoded by cjson (REF §4.4:
key order changed, empty arrays stored as `{}`), a stale `idx:ext` entry, a dangling lookup, and optionally
legacy SET-typed status indexes (TypeScript migration 002 never ran)."""

from __future__ import annotations

import json
from typing import Any

from hitl_streams._time import iso_to_ms


def js(value: Any) -> str:
    """`JSON.stringify`: no whitespace, insertion order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


T0 = "2026-03-01T10:00:00.000Z"
T1 = "2026-03-01T10:00:01.000Z"
T2 = "2026-03-01T10:00:02.000Z"
T3 = "2026-03-01T10:00:03.000Z"
T4 = "2026-03-01T10:00:04.500Z"
T5 = "2026-03-01T10:05:00.000Z"

APPROVE_DENY = [{"id": "approve", "label": "Approve"}, {"id": "deny", "label": "Deny"}]

R1 = {
    "id": "r1",
    "token": "tok1",
    "channel": "slack",
    "namespace": "global",
    "message": "Ship it?",
    "actions": APPROVE_DENY,
    "context": {"pr": 17, "tags": []},
    "status": "pending",
    "externalId": "m1",
    "externalIds": {"slack": "m1"},
    "createdAt": T1,
}

# Resolved through the TypeScript Lua script: cjson re-encoded the whole record (REF §4.4), so the key order
# is cjson's, `context.tags: []` became `{}` and an empty select `options: []` became `{}`.
R2_CJSON = (
    '{"status":"resolved","channel":"slack","id":"r2","namespace":"ops","token":"tok2",'
    '"actions":[{"id":"approve","fields":{"env":{"kind":"select","label":"Env","options":{}}}},{"id":"deny"}],'
    '"message":"Deploy?","context":{"tags":{},"n":3},"externalIds":{"slack":"m2new"},"externalId":"m2new",'
    '"createdAt":"2026-03-01T10:00:02.000Z","resolvedAt":"2026-03-01T10:05:00.000Z",'
    '"result":{"feedbacks":{},"externalRef":"m2new","type":"RESOLVED","id":"r2","actionId":"deny",'
    '"by":{"id":"u1","name":"Ann"}}}'
)

# Written long ago: legacy action object `{submit, deny}`, no namespace; a batch item.
R3_LEGACY = {
    "id": "r3",
    "token": "tok3",
    "channel": "slack",
    "message": "Item 0",
    "actions": {"submit": {"label": "Go"}, "deny": {}},
    "status": "pending",
    "createdAt": T3,
    "batchId": "b1",
    "batchIndex": 0,
}

R4 = {
    "id": "r4",
    "token": "tok4",
    "channel": "slack",
    "namespace": "global",
    "message": "Item 1",
    "actions": APPROVE_DENY,
    "status": "resolved",
    "result": {"type": "TIMED_OUT", "id": "r4", "externalRef": ""},
    "createdAt": T4,
    "resolvedAt": T5,
    "batchId": "b1",
    "batchIndex": 1,
}

B1 = {
    "id": "b1",
    "channel": "slack",
    "message": "Review these",
    "actions": APPROVE_DENY,
    "externalId": "bm1",
    "externalIds": {"slack": "bm1"},
    "createdAt": T2,
}

E1 = {"id": "e1", "threadId": "r1", "message": "created", "createdAt": T1}
E2 = {"id": "e2", "threadId": "r1", "message": "FYI", "detail": {"k": [1, 2]}, "createdAt": T4}
N1 = {"id": "n1", "channel": "slack", "message": "FYI", "groupId": "r1", "externalId": "nm1", "createdAt": T4}


async def write_ts_layout(redis: Any, prefix: str, *, legacy_set_indexes: bool = False) -> None:
    """Write the deployment the way the TypeScript `IoredisState` (and its history) left it."""
    p = prefix
    requests: list[tuple[str, str, str, str]] = [  # id, namespace, status, json
        ("r1", "global", "pending", js(R1)),
        ("r2", "ops", "resolved", R2_CJSON),
        ("r3", "global", "pending", js(R3_LEGACY)),
        ("r4", "global", "resolved", js(R4)),
    ]
    created = {"r1": T1, "r2": T2, "r3": T3, "r4": T4}
    for rid, ns, status, value in requests:
        score = iso_to_ms(created[rid])
        await redis.set(f"{p}:req:{rid}", value)
        await redis.set(f"{p}:idx:token:tok{rid[1:]}", rid)
        if legacy_set_indexes:
            await redis.sadd(f"{p}:idx:status:{status}", rid)
            await redis.sadd(f"{p}:idx:all:req", rid)
        else:
            await redis.zadd(f"{p}:idx:status:{status}", {rid: score})
            await redis.zadd(f"{p}:idx:all:req", {rid: score})
        if not legacy_set_indexes:  # TypeScript migration 003 wrote these
            await redis.zadd(f"{p}:idx:ns:{ns}", {rid: score})
            await redis.zadd(f"{p}:idx:ns:{ns}:status:{status}", {rid: score})
    await redis.zadd(f"{p}:idx:batch:b1", {"r3": 0, "r4": 1})
    await redis.set(f"{p}:idx:ext:m1", "r1")
    await redis.set(f"{p}:idx:ext:m2old", "r2")  # stale: r2 was redelivered, TypeScript never deletes it
    await redis.set(f"{p}:idx:ext:m2new", "r2")
    await redis.set(f"{p}:idx:ext:gone", "r99")  # dangling: no such request
    await redis.set(f"{p}:batch:b1", js(B1))
    await redis.set(f"{p}:idx:batch:ext:bm1", "b1")
    await redis.set(f"{p}:timeline:entry:e1", js(E1))
    await redis.set(f"{p}:timeline:entry:e2", js(E2))
    await redis.zadd(f"{p}:timeline:r1", {"e1": iso_to_ms(T1), "e2": iso_to_ms(T4)})
    await redis.set(f"{p}:notify:n1", js(N1))
    await redis.set(f"{p}:idx:notify:ext:nm1", "n1")
    ledger = ["001-initial"] if legacy_set_indexes else ["001-initial", "002-sorted-indexes", "003-namespace-indexes"]
    await redis.sadd(f"{p}:meta:migrations", *ledger)
