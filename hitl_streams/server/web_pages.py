"""Mounting the web inbox (`server/web/`) under `inbox/` next to the JSON inbox API.

The pages need Jinja2 (the `inbox` extra). Without it the JSON API still works and the HTML routes
answer 404, with one warning saying what to install.
"""

from __future__ import annotations

import importlib.util
import logging

from .asgi import BASE_PATH, Scope, _Body, _Responder
from .inbox_api import PageHandler
from .reviewer_auth import ReviewerAuth
from .reviewer_inbox import ReviewerInbox

__all__ = ["MISSING_JINJA2", "web_pages"]

log = logging.getLogger("hitl_streams.server")

MISSING_JINJA2 = (
    "hitl: the web inbox needs Jinja2: pip install 'hitl-streams[inbox]'. Only the JSON inbox API (inbox/api/) is on."
)


def web_pages(auth: ReviewerAuth, ops: ReviewerInbox) -> PageHandler | None:
    """The page handler for `InboxRoutes`, or `None` (with a warning) when Jinja2 is not installed."""
    if importlib.util.find_spec("jinja2") is None:
        log.warning(MISSING_JINJA2)
        return None
    from .web import WebInbox

    web = WebInbox(ops, auth)

    async def pages(scope: Scope, body: _Body, out: _Responder, segments: list[str]) -> None:
        # The inbox's own prefix, so every link it writes works wherever the app is mounted.
        root = (scope.get("root_path") or "").rstrip("/")
        path: str = scope.get("path") or "/"
        relative = path[len(root) :] if root and path.startswith(root) else path
        if relative == BASE_PATH or relative.startswith(BASE_PATH + "/"):
            root += BASE_PATH
        await web(dict(scope, root_path=f"{root}/inbox"), body.receive, out.send)

    return pages
