"""Plain-ASGI request and response helpers for the web inbox: paths, cookies, forms, security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from ..reviewer_auth import cookie_value

__all__ = [
    "HTML_HEADERS",
    "BodyTooLarge",
    "Disconnected",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "cookie_header",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)


class BodyTooLarge(Exception):
    pass


class Disconnected(Exception):
    pass


def _relative(scope: Scope) -> str:
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


@dataclass
class Request:
    """One HTTP request to the inbox; `base` is the inbox's own path prefix (mount-aware)."""

    scope: Scope
    receive: Receive
    trust_forwarded_proto: bool = False
    segments: list[str] = field(init=False)
    base: str = field(init=False)
    _form: dict[str, list[str]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.segments = [s for s in _relative(self.scope).split("/") if s]
        self.base = (self.scope.get("root_path") or "").rstrip("/")

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope.get("headers") or ():
            if bytes(key).lower() == name:
                return bytes(value).decode("latin-1")
        return None

    def query(self, name: str) -> str | None:
        raw = self.scope.get("query_string") or b""
        values = parse_qs(raw.decode("latin-1"), keep_blank_values=True).get(name)
        return values[-1] if values else None

    def cookie(self, name: str) -> str | None:
        # The same lenient reading as the reviewer side's: another app's odd cookie on the same host
        # must not sign a reviewer out (`http.cookies` gives up on the whole header).
        return cookie_value(self.scope, name)

    @property
    def https(self) -> bool:
        """Over https: the scheme, or `X-Forwarded-Proto` when the proxy in front is trusted."""
        if self.scope.get("scheme") == "https":
            return True
        if self.trust_forwarded_proto:
            forwarded = self.header(b"x-forwarded-proto")
            return forwarded is not None and forwarded.split(",")[0].strip().lower() == "https"
        return False

    def url(self, *parts: str) -> str:
        """An absolute path under the inbox; every part is percent-encoded."""
        return self.base + "/" + "/".join(quote(p, safe="") for p in parts)

    async def form(self, limit: int) -> dict[str, list[str]]:
        """The url-encoded form body, at most `limit` bytes (read once, then cached)."""
        if self._form is not None:
            return self._form
        length = self.header(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        text = b"".join(chunks).decode("utf-8", errors="replace")
        try:
            self._form = parse_qs(text, keep_blank_values=True, max_num_fields=1000)
        except ValueError:  # more fields than max_num_fields
            raise BodyTooLarge from None
        return self._form


def cookie_header(name: str, value: str, *, path: str, secure: bool, max_age: int | None = None) -> bytes:
    parts = [f"{name}={value}", f"Path={path or '/'}", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: bytes = b"text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def redirect(cls, location: str, *cookies: bytes) -> Response:
        headers = [(b"location", location.encode("latin-1", errors="replace"))]
        headers.extend((b"set-cookie", c) for c in cookies)
        return cls(303, headers=headers)

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode()),
            *HTML_HEADERS,
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})
