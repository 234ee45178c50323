"""The DBOS resume token: the JSON string `{"workflowId":"…","topic":"hitl-wait-N"}`.

The resolver sends the decision to that workflow on that topic (`DBOSClient.send`), where the waiting
`DBOS.recv` picks it up; a message sent before the wait starts is kept by DBOS until then.
"""

from __future__ import annotations

import json

__all__ = ["decode_dbos_token", "encode_dbos_token"]


def encode_dbos_token(workflow_id: str, topic: str) -> str:
    """The resume token for the wait on `topic` of workflow `workflow_id`."""
    return json.dumps({"workflowId": workflow_id, "topic": topic}, separators=(",", ":"), ensure_ascii=False)


def decode_dbos_token(token: str) -> tuple[str, str]:
    """`(workflow_id, topic)` from a token; `ValueError("Invalid hitl token: <token>")` if it is not one."""
    try:
        parsed = json.loads(token)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        workflow_id, topic = parsed.get("workflowId"), parsed.get("topic")
        if isinstance(workflow_id, str) and workflow_id and isinstance(topic, str) and topic:
            return workflow_id, topic
    raise ValueError(f"Invalid hitl token: {token}")
