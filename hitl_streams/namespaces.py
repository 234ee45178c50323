"""Namespace rules: a query dimension (not an access boundary), `"global"` by default (REF §2.4)."""

from __future__ import annotations

import re

from .errors import ValidationError

__all__ = ["DEFAULT_NAMESPACE", "NAMESPACE_PATTERN", "resolve_namespace", "validate_filter", "validate_namespace"]

DEFAULT_NAMESPACE = "global"
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def validate_namespace(namespace: object) -> str:
    """Return the namespace, or raise `ValidationError` with the TypeScript SDK's message."""
    if not isinstance(namespace, str) or NAMESPACE_PATTERN.fullmatch(namespace) is None:
        raise ValidationError(
            f'Invalid namespace "{namespace}". Use letters, digits, "_", ".", or "-" (max 128 chars).'
        )
    return namespace


def resolve_namespace(namespace: object | None) -> str:
    """`None` gives the default namespace; anything else must be valid."""
    return DEFAULT_NAMESPACE if namespace is None else validate_namespace(namespace)


def validate_filter(status: object, namespace: object) -> None:
    """The filter of `State.list`/`count`: a status of `"pending"`/`"resolved"` (or none), a valid namespace
    (or none: a falsy one means every namespace, REF §2.4). Every State rejects the same inputs alike."""
    if status is not None and status not in ("pending", "resolved"):
        raise ValidationError(f'Invalid status "{status}": use "pending" or "resolved"')
    if namespace:
        validate_namespace(namespace)
