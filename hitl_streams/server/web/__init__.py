"""The web inbox: server-rendered HTML pages for reviewers (`inbox/`), usable without JavaScript."""

from .app import LOGIN_COOKIE, SESSION_COOKIE, WebInbox
from .ports import Authenticator, ReviewerOps

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "Authenticator", "ReviewerOps", "WebInbox"]
