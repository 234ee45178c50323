"""SMTP settings from one URL: `smtp://user:pass@host:587?starttls=1` (STARTTLS), `smtps://...:465`
(implicit TLS), `smtp://host:25` (STARTTLS when the server offers it; `?starttls=0` never, for a local
relay that offers a certificate it cannot prove). User and password are percent-decoded."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from ..errors import ValidationError

__all__ = ["SmtpSettings"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False
    start_tls: bool | None = None
    """True: STARTTLS required; False: never; None: when the server offers it."""
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValidationError("An SMTP URL looks like smtp://user:pass@host:587?starttls=1 or smtps://host:465")
        query = urllib.parse.parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        given = query.get("starttls")
        start: bool | None = None if given is None else given[-1].lower() in _TRUE
        if implicit:
            start = False
        try:
            port = parts.port or (465 if implicit else 587 if start else 25)
        except ValueError:
            raise ValidationError("The SMTP URL has an invalid port") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=start,
        )
