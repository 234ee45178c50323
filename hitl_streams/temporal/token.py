"""The Temporal resume token, wire-compatible with the TypeScript binding (`encodeHitlToken`).

The token is the JSON string `{"workflowId":"…","waitToken":"hitl-wait-N"}` (compact, in that key order,
as `JSON.stringify` writes it), so a TypeScript server can resume a Python workflow and the reverse.
"""

from __future__ import annotations

import json

__all__ = ["HITL_RESUME_SIGNAL", "decode_hitl_token", "encode_hitl_token"]

HITL_RESUME_SIGNAL = "hitl-resume"
"""The one signal a hitl workflow listens to; its payload is `{"waitToken", "payload"}`."""


def encode_hitl_token(workflow_id: str, wait_token: str) -> str:
    """The resume token for wait `wait_token` of workflow `workflow_id`."""
    return json.dumps({"workflowId": workflow_id, "waitToken": wait_token}, separators=(",", ":"), ensure_ascii=False)


def decode_hitl_token(token: str) -> tuple[str, str]:
    """`(workflow_id, wait_token)` from a token; `ValueError("Invalid hitl token: <token>")` if it is not one."""
    try:
        parsed = json.loads(token)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        workflow_id, wait_token = parsed.get("workflowId"), parsed.get("waitToken")
        if isinstance(workflow_id, str) and workflow_id and isinstance(wait_token, str) and wait_token:
            return workflow_id, wait_token
    raise ValueError(f"Invalid hitl token: {token}")
