"""The exception hierarchy: one base, `HitlError`; messages match the TypeScript SDK where it has one."""

from __future__ import annotations

__all__ = [
    "AlreadyResolvedError",
    "DuplicateRequestError",
    "DuplicateTokenError",
    "FeedbackValidationError",
    "HitlError",
    "NotFoundError",
    "NotReplicatedError",
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


class NotReplicatedError(HitlError):
    """A write was applied on the primary, but fewer replicas than required (`StreamState(wait_replicas=N)`)
    acknowledged it within the timeout: a failover now could lose it. Retrying is safe (writes carry op
    ids) once the replicas are back."""

    def __init__(self, acknowledged: int, required: int, timeout_ms: int) -> None:
        super().__init__(
            f"only {acknowledged} of {required} replica(s) acknowledged the write within {timeout_ms} ms; "
            "it is on the primary but could be lost on a failover"
        )
        self.acknowledged = acknowledged
        self.required = required
