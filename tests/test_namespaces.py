"""Namespace rules: the pattern, the default, and the TypeScript SDK's message (REF §2.4)."""

from __future__ import annotations

import pytest

from hitl_streams import ValidationError
from hitl_streams.namespaces import DEFAULT_NAMESPACE, resolve_namespace, validate_namespace


@pytest.mark.parametrize("namespace", ["global", "team-a", "Team_B.2", "a", "x" * 128, "-._"])
def test_valid_namespaces_are_returned_unchanged(namespace: str) -> None:
    assert validate_namespace(namespace) == namespace
    assert resolve_namespace(namespace) == namespace


@pytest.mark.parametrize("namespace", ["", "x" * 129, "has space", "slash/ns", "colon:ns", "ünï", "a\n", 7, None])
def test_invalid_namespaces_raise_with_the_typescript_message(namespace: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_namespace(namespace)
    assert str(caught.value) == (
        f'Invalid namespace "{namespace}". Use letters, digits, "_", ".", or "-" (max 128 chars).'
    )


def test_absent_namespace_resolves_to_global() -> None:
    assert DEFAULT_NAMESPACE == "global"
    assert resolve_namespace(None) == "global"
    with pytest.raises(ValidationError):
        resolve_namespace("")
