"""Temporal binding: a hitl client inside Temporal workflows, and the resolver that resumes them.

Workflow side: `client = temporal_hitl_client()` inside a workflow; register `ACTIVITIES` on the worker.
Server side: `Hitl(state, resolver=TemporalResolver(temporal_client))`. Needs the `temporal` extra.
Wire-compatible with the TypeScript binding: signal `hitl-resume` with `{waitToken, payload}` and the
token `{"workflowId","waitToken"}`, so either language's server can resume either language's workflow.
"""

from . import _require  # noqa: F401  (the actionable ImportError comes first)
from .activities import ACTIVITIES, HITL_REQUEST_ACTIVITY, hitl_activities
from .resolver import TemporalResolver
from .token import HITL_RESUME_SIGNAL, decode_hitl_token, encode_hitl_token
from .workflow import TemporalPrimitives, temporal_hitl_client

__all__ = [
    "ACTIVITIES",
    "HITL_REQUEST_ACTIVITY",
    "HITL_RESUME_SIGNAL",
    "TemporalPrimitives",
    "TemporalResolver",
    "decode_hitl_token",
    "encode_hitl_token",
    "hitl_activities",
    "temporal_hitl_client",
]
