"""`TemporalResolver`: the server side of the Temporal binding.

It decodes the resume token and signals `hitl-resume` with `{"waitToken", "payload"}` to the workflow,
the payload being the `HumanResult` JSON, as the TypeScript `temporalResolver` does. A token that is not
a Temporal hitl token, or a workflow that no longer runs, can never be resumed: that is a
`ResumeRejected` (no retries); anything else (the Temporal service unreachable) is retried.
"""

from __future__ import annotations

import msgspec
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ..errors import HitlError
from ..results import HumanResult
from ..server.resolvers import ResumeRejected
from .token import HITL_RESUME_SIGNAL, decode_hitl_token

__all__ = ["TemporalResolver"]


class TemporalResolver:
    """Resumes Temporal workflows by signalling them through `client` (a connected `temporalio` client)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    async def connect(cls, address: str, *, namespace: str = "default") -> TemporalResolver:
        """A resolver with its own client connected to `address` (e.g. `127.0.0.1:7233`).

        Checks that the namespace exists (a typo would otherwise reject every resumption later).
        """
        client = await Client.connect(address, namespace=namespace)
        try:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise HitlError(f"the Temporal namespace {namespace!r} does not exist at {address}") from None
            raise
        return cls(client)

    def __repr__(self) -> str:
        return f"TemporalResolver(namespace={self.client.namespace!r})"

    async def resolve(self, token: str, result: HumanResult) -> None:
        try:
            workflow_id, wait_token = decode_hitl_token(token)
        except ValueError as error:
            raise ResumeRejected(str(error)) from None
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            await handle.signal(HITL_RESUME_SIGNAL, {"waitToken": wait_token, "payload": msgspec.to_builtins(result)})
        except RPCError as error:
            # The workflow is gone for good; a missing namespace is a configuration error to fix and retry.
            if error.status == RPCStatusCode.NOT_FOUND and "namespace" not in error.message.lower():
                raise ResumeRejected(f"workflow {workflow_id!r} is not running: {error.message}") from None
            raise
