"""Which exceptions mean "the state does not answer right now" (HTTP 503, retry later) rather than a bug.

One list, used by the HTTP layer and the health check: a Redis that is down, still loading its dataset,
failing over, or out of memory under `noeviction` is unavailable; a retry after a moment may succeed.
Authentication failures are not in it: retrying does not fix a wrong password.
"""

from __future__ import annotations

from typing import Final

from redis import exceptions as rx

from .errors import NotReplicatedError, StateUnavailableError

__all__ = ["UNAVAILABLE", "is_unavailable"]

UNAVAILABLE: Final[tuple[type[BaseException], ...]] = (
    StateUnavailableError,
    NotReplicatedError,  # written on the primary, but the replicas asked for did not confirm in time
    rx.ConnectionError,  # includes BusyLoadingError (LOADING) and MaxConnectionsError
    rx.TimeoutError,
    rx.TryAgainError,
    rx.ClusterError,  # includes ClusterDownError and MasterDownError
    rx.SlotNotCoveredError,
    rx.ReadOnlyError,  # READONLY: a replica that was a master until a failover
    rx.OutOfMemoryError,  # OOM under `noeviction`: writes refused until memory is freed
)
_NOT_TRANSIENT: Final = (rx.AuthenticationError, rx.AuthorizationError)
_CHAIN_DEPTH: Final = 4


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or the exception it was raised `from` (a few levels), says the state is unavailable."""
    seen: BaseException | None = exc
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            return False
        if isinstance(seen, UNAVAILABLE) and not isinstance(seen, _NOT_TRANSIENT):
            return True
        seen = seen.__cause__
    return False
