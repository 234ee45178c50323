"""The workflow side: ask a human from workflow code, over the server's HTTP API (SPEC §11, REF §6).

`create_hitl_client(primitives, url=..., secret=...)` builds a `HitlClient` on an engine's `Primitives`
(a suspension, a durable timer, a durable HTTP step). Engine bindings (`hitl_streams.temporal`,
`hitl_streams.dbos`) and `Hitl.client()` (in process) provide the primitives; `require_approval` gates an
async function (an agent's tool) behind a human decision.

This package depends only on the domain modules at the package root, never on the server or Redis, and
does no I/O at import time, so it imports inside Temporal's workflow sandbox.
"""

from ..durations import Duration, parse_duration
from ..errors import ApprovalDenied, ApprovalTimedOut, HitlError, HitlHttpError, ValidationError
from ..reminders import EscalateEntry, RemindEntry, ReminderEntry, escalate, remind
from ..results import HumanResult, Resolved, TimedOut, is_resolved
from .approval import require_approval
from .client import HitlClient, create_hitl_client
from .handles import BatchItem, Notified, Pending
from .primitives import HitlRequest, HitlResponse, Primitives
from .transport import DEFAULT_BASE_PATH

__all__ = [
    "DEFAULT_BASE_PATH",
    "ApprovalDenied",
    "ApprovalTimedOut",
    "BatchItem",
    "Duration",
    "EscalateEntry",
    "HitlClient",
    "HitlError",
    "HitlHttpError",
    "HitlRequest",
    "HitlResponse",
    "HumanResult",
    "Notified",
    "Pending",
    "Primitives",
    "RemindEntry",
    "ReminderEntry",
    "Resolved",
    "TimedOut",
    "ValidationError",
    "create_hitl_client",
    "escalate",
    "is_resolved",
    "parse_duration",
    "remind",
    "require_approval",
]
