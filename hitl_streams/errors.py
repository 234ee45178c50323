"""The exception hierarchy: one base, `HitlError`; messages match the TypeScript SDK where it has one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import Resolved, TimedOut

__all__ = [
    "AlreadyResolvedError",
    "ApprovalDenied",
    "ApprovalTimedOut",
    "DuplicateRequestError",
    "DuplicateTokenError",
    "FeedbackValidationError",
    "HitlError",
    "HitlHttpError",
    "NotFoundError",
    "SchemaError",
    "UnknownActionError",
    "UnknownBatchError",
    "UnknownChannelError",
    "UnknownNotifyDeliveryError",
    "UnknownRequestError",
    "ValidationError",
]


class HitlError(Exception):
    """Base class of every error hitl-streams raises on purpose."""


class NotFoundError(HitlError):
    """A subject (request, batch, notify delivery) does not exist. HTTP 404."""


class UnknownRequestError(NotFoundError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f'Unknown human request "{request_id}"')
        self.request_id = request_id


class UnknownBatchError(NotFoundError):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f'Unknown batch "{batch_id}"')
        self.batch_id = batch_id


class UnknownNotifyDeliveryError(NotFoundError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f'Unknown notify delivery "{delivery_id}"')
        self.delivery_id = delivery_id


class AlreadyResolvedError(HitlError):
    """The request was resolved (or timed out) before. HTTP 409."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f'Human request "{request_id}" is already resolved')
        self.request_id = request_id


class DuplicateTokenError(HitlError):
    """A request with this resume token already exists; nothing was written."""

    def __init__(self, token_owner_id: str | None = None) -> None:
        super().__init__("A human request with this resume token already exists")
        # The id of the request that holds the token, when the state knows it. Never the token itself:
        # tokens are engine resume credentials and do not belong in messages or logs.
        self.existing_id = token_owner_id


class DuplicateRequestError(HitlError):
    """A request (or batch, or notify delivery) with this id already exists; nothing was written."""

    def __init__(self, kind: str, subject_id: str) -> None:
        super().__init__(f'{kind} "{subject_id}" already exists')
        self.subject_id = subject_id


class ValidationError(HitlError, ValueError):
    """Bad caller input: a malformed cursor, namespace, table name, action or body. HTTP 400."""


class FeedbackValidationError(ValidationError):
    """Submitted feedback does not fit the action's fields. HTTP 400."""


class UnknownActionError(ValidationError):
    def __init__(self, action_id: str) -> None:
        super().__init__(f'Unknown action "{action_id}".')
        self.action_id = action_id


class UnknownChannelError(ValidationError):
    """A channel key names no configured adapter."""


class SchemaError(HitlError):
    """The projection schema could not be brought up to date (a migration failed or is unknown)."""


class HitlHttpError(HitlError):
    """The workflow client's call to the server failed (a non-2xx answer): `status` and `body` as received.

    The message is the TypeScript client's: `hitl: POST <path> failed with <status>: <body>`. Raising lets
    an engine retry the step.
    """

    def __init__(self, path: str, status: int, body: str) -> None:
        super().__init__(f"hitl: POST {path} failed with {status}: {body}")
        self.path = path
        self.status = status
        self.body = body


class ApprovalDenied(HitlError):
    """`require_approval`: the reviewer chose an action other than `approve`; `result` says which and why."""

    def __init__(self, result: Resolved) -> None:
        reason = result.feedbacks.get("reason")
        why = f": {reason}" if isinstance(reason, str) and reason else ""
        super().__init__(f'Request "{result.id}" was not approved (action "{result.action_id}"){why}')
        self.result = result


class ApprovalTimedOut(HitlError):
    """`require_approval`: nobody decided before the timeout; `result` is the `TimedOut` record."""

    def __init__(self, result: TimedOut) -> None:
        super().__init__(f'Request "{result.id}" timed out waiting for approval')
        self.result = result
