"""Slack request signatures: `X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")`.

Checked before anything else is read from a request: a wrong signature or a timestamp more than five
minutes away from now (a replayed request) is refused. The compare is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["MAX_SKEW_SECONDS", "sign", "verify"]

MAX_SKEW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack sends for this body (also used by tests to sign payloads)."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *, now: float | None = None) -> bool:
    """Whether the request is Slack's and fresh."""
    if not secret or not timestamp or not signature or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_SKEW_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode("latin-1"))
