"""Bearer authentication of the internal API: one shared secret, compared in constant time."""

from __future__ import annotations

import hmac
import logging

__all__ = ["BearerAuth"]

log = logging.getLogger("hitl_streams.server")

OPEN_WARNING = (
    "hitl: HITL_SECRET is not set; the internal API accepts unauthenticated requests. "
    "Set HITL_SECRET (same value for server and workflows) before deploying."
)


class BearerAuth:
    """`Authorization: Bearer <secret>` (any case of `Bearer`). Without a secret every request passes, with
    one warning."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None
        self._warned = False

    @property
    def open(self) -> bool:
        return self._secret is None

    def __repr__(self) -> str:
        return f"BearerAuth(open={self.open})"

    def allows(self, authorization: bytes | None) -> bool:
        if self._secret is None:
            if not self._warned:
                self._warned = True
                log.warning(OPEN_WARNING)
            return True
        if authorization is None:
            return False
        # The scheme is case-insensitive (RFC 9110 §11.1); the credentials follow one or more spaces.
        scheme, _, credentials = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.lstrip(b" "), self._secret)
