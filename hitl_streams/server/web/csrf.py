"""CSRF tokens: an HMAC of the session, checked in constant time on every POST.

For a cookie session the token is `HMAC(session token, purpose)`: an attacker who cannot read the
HttpOnly cookie cannot compute it, and every replica can check it without shared configuration. A
session without a cookie (a trusted proxy header) binds to the reviewer id under the server key.
The sign-in form, before any session exists, binds to a random pre-session cookie and the link token.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["csrf_token", "csrf_valid"]

_PURPOSE = b"hitl-inbox-csrf-v1:"


def csrf_token(key: bytes, binding: str) -> str:
    """The token for one session (`key` is the secret, `binding` what the token is tied to)."""
    return hmac.new(key, _PURPOSE + binding.encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: bytes, binding: str, given: str | None) -> bool:
    if not given or not key:
        return False
    return hmac.compare_digest(csrf_token(key, binding).encode(), given.encode())
