"""The web inbox: server-rendered HTML pages for reviewers (`inbox/`), usable without JavaScript."""

from .app import LOGIN_COOKIE, TRUST_PROTO_ENV, WebInbox

__all__ = ["LOGIN_COOKIE", "TRUST_PROTO_ENV", "WebInbox"]
