"""`hitl-streams serve --dbos-database-url`: the served API resumes DBOS workflows.

The server is a child process that is not the DBOS app: it reaches the workflows only through the
system database. The decision is recorded by another `Hitl` on the same Redis (a second replica).
"""

from __future__ import annotations

import dbos_workflows
import pytest
import redis.asyncio
from dbos import DBOS
from engine_support import SECRET, pending_requests, served_by_cli

from hitl_streams import Hitl, StreamState


async def test_serve_resumes_dbos_workflows(
    dbos_database_url: str, redis_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--redis-url", redis_url, "--table", table_name, "--dbos-database-url", dbos_database_url]
    async with served_by_cli(*args) as url:
        monkeypatch.setenv("HITL_URL", url)
        monkeypatch.setenv("HITL_SECRET", SECRET)
        connection = redis.asyncio.Redis.from_url(redis_url)
        replica = Hitl(StreamState(connection, table_name=table_name), secret=SECRET)
        handle = await DBOS.start_workflow_async(dbos_workflows.ask, {"message": "Via serve?"})
        [request] = await pending_requests(replica)
        await replica.inbox.resolve(request.id, action_id="approve", feedbacks={"note": "replica two"})
        result = await handle.get_result()
        await connection.aclose()
    assert (result["type"], result["id"], result["actionId"]) == ("RESOLVED", request.id, "approve")
    assert result["feedbacks"] == {"note": "replica two"}
