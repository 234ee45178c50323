"""`DBOSResolver`: resumes DBOS workflows from any process, through the DBOS system database.

It sends the `HumanResult` JSON to the workflow named in the token on the token's topic with
`DBOSClient.send`, so the hitl server need not be the DBOS application. The idempotency key
`hitl-resume:<topic>` makes a retried delivery of the same decision a no-op while the message waits.
A token that is not a DBOS hitl token, or a workflow that does not exist, is a `ResumeRejected`.
"""

from __future__ import annotations

import asyncio

import msgspec
from dbos import DBOSClient
from dbos._error import DBOSNonExistentWorkflowError

from .._urls import redact_url
from ..results import HumanResult
from ..server.resolvers import ResumeRejected
from .token import decode_dbos_token

__all__ = ["DBOSResolver"]


class DBOSResolver:
    """Resumes DBOS workflows by sending to them through the system database at `system_database_url`.

    Pass `client` to use your own `DBOSClient`; otherwise one is opened on first use (`close()` ends it).
    """

    def __init__(self, system_database_url: str, *, client: DBOSClient | None = None) -> None:
        self.system_database_url = system_database_url
        self._client = client
        self._owned = client is None
        self._opening = asyncio.Lock()

    @property
    def where(self) -> str:
        """The system database URL without its password (for messages)."""
        return redact_url(self.system_database_url)

    def __repr__(self) -> str:
        return f"DBOSResolver({self.where!r})"

    async def connect(self) -> None:
        """Open the client now and check the database is a DBOS system database (fails early if not).

        DBOSClient never creates the schema: the DBOS application must have launched on it once.
        """
        client = await self._connected()
        await client.list_workflows_async(limit=1)

    async def _connected(self) -> DBOSClient:
        async with self._opening:
            if self._client is None:
                url = self.system_database_url
                self._client = await asyncio.to_thread(lambda: DBOSClient(system_database_url=url))
            return self._client

    async def resolve(self, token: str, result: HumanResult) -> None:
        try:
            workflow_id, topic = decode_dbos_token(token)
        except ValueError as error:
            raise ResumeRejected(str(error)) from None
        client = await self._connected()
        try:
            await client.send_async(
                workflow_id, msgspec.to_builtins(result), topic, idempotency_key=f"hitl-resume:{topic}"
            )
        except DBOSNonExistentWorkflowError as error:
            raise ResumeRejected(f"DBOS workflow {workflow_id!r} does not exist: {error}") from None

    async def close(self) -> None:
        """Close the client this resolver opened (not one it was given)."""
        client, self._client = self._client, None
        if client is not None and self._owned:
            await asyncio.to_thread(client.destroy)
