"""Who is asking: a reviewer signed in by API token, browser session or an authenticating proxy.

Three ways in, tried in this order on every request:
1. `Authorization: Bearer <reviewer token>` (`hitl-streams reviewers token NAME`);
2. the `hitl_session` cookie, a session obtained by exchanging a one-time sign-in link (`sign_in`);
3. only when configured, an authenticating proxy's identity header (oauth2-proxy's `X-Forwarded-Email`
   or `X-Forwarded-User`), mapped to a reviewer by email (a value with `@`) or by name.

The first that holds a good credential wins; one that is not good (a wrong token, an expired session) is
passed over, which grants nothing the others would not (a proxy may add an `Authorization` header of its
own, e.g. oauth2-proxy's `--pass-authorization-header`). Every check reads the reviewer directory (no
cache that could outlive a revocation).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..results import Reviewer
from ..reviewers import ALL_NAMESPACES, ReviewerDirectory, ReviewerRecord

__all__ = ["SESSION_COOKIE", "Principal", "ReviewerAuth", "cookie_value", "header_value"]

SESSION_COOKIE = "hitl_session"

Scope = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated reviewer, as of this request. `namespaces` may hold `"*"` (every namespace)."""

    reviewer_id: str
    name: str
    email: str | None
    namespaces: frozenset[str]

    @classmethod
    def of(cls, reviewer: ReviewerRecord) -> Principal:
        return cls(reviewer.id, reviewer.name, reviewer.email, frozenset(reviewer.namespaces))

    @property
    def all_namespaces(self) -> bool:
        return ALL_NAMESPACES in self.namespaces

    def allows(self, namespace: str) -> bool:
        return self.all_namespaces or namespace in self.namespaces

    def as_reviewer(self) -> Reviewer:
        """The `by` of this reviewer's decisions."""
        return Reviewer(id=self.reviewer_id, name=self.name, email=self.email)


def header_value(scope: Scope, name: str) -> str | None:
    """The first value of header `name` (case-insensitive), as text; `None` if absent or not latin-1."""
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == wanted:
            try:
                return bytes(value).decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                return None
    return None


def _cookie_headers(scope: Scope) -> Iterable[str]:
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == b"cookie":
            yield bytes(value).decode("latin-1")


def cookie_value(scope: Scope, name: str) -> str | None:
    """The value of cookie `name` from the request's `Cookie` headers."""
    for header in _cookie_headers(scope):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
    return None


class ReviewerAuth:
    """Authenticates reviewers against a `ReviewerDirectory`. `proxy_header` names the identity header
    of a trusted authenticating proxy; without it such headers are ignored (anyone could send one)."""

    def __init__(self, directory: ReviewerDirectory, *, proxy_header: str | None = None) -> None:
        self.directory = directory
        self.proxy_header = proxy_header.strip().lower() if proxy_header else None

    async def authenticate(self, scope: Scope) -> Principal | None:
        """The reviewer behind this request, or `None` (then answer 401)."""
        authorization = header_value(scope, "authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and (found := await self._verified(token.strip(), ("token",))):
                return found
        session = cookie_value(scope, SESSION_COOKIE)
        if session and (found := await self._verified(session, ("session",))):
            return found
        if self.proxy_header is not None:
            identity = header_value(scope, self.proxy_header)
            if identity:
                return await self._from_proxy(identity.strip())
        return None

    async def _verified(self, token: str, kinds: tuple[Any, ...]) -> Principal | None:
        reviewer = await self.directory.verify(token, kinds)
        return None if reviewer is None else Principal.of(reviewer)

    async def _from_proxy(self, identity: str) -> Principal | None:
        if "@" in identity:
            reviewer = await self.directory.get_by_email(identity)
        else:
            try:
                reviewer = await self.directory.get(identity)
            except ValueError:  # not a valid reviewer name
                return None
        return Principal.of(reviewer) if reviewer is not None and reviewer.active else None

    async def sign_in(self, link_token: str) -> tuple[Principal, str] | None:
        """Exchange a one-time sign-in link token for a session: the principal and the session token
        (set it as the `hitl_session` cookie). `None` if the link is unknown, expired or used."""
        outcome = await self.directory.sign_in(link_token)
        if outcome is None:
            return None
        reviewer, session = outcome
        return Principal.of(reviewer), session.token

    async def sign_out(self, session_token: str) -> None:
        """End a session (unknown or ended sessions are ignored)."""
        await self.directory.sign_out(session_token)
