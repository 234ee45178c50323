"""`InboxSettings`: turning the reviewer side on (`Hitl(..., inbox=InboxSettings(...))`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["PUBLIC_URL_ENV", "InboxSettings"]

PUBLIC_URL_ENV = "HITL_PUBLIC_URL"
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")


@dataclass(frozen=True, slots=True)
class InboxSettings:
    """The reviewer side: the JSON inbox API under `inbox/api/` (and the web inbox under `inbox/`).

    - `public_url`: where reviewers reach the server (e.g. `https://hitl.example.com`, with the mount
      path if any); sign-in links are absolute with it. Defaults to `HITL_PUBLIC_URL`.
    - `trust_proxy_header`: the identity header of an authenticating proxy in front of the server
      (oauth2-proxy: `X-Forwarded-Email` or `X-Forwarded-User`), mapped to a reviewer by email or name.
      Set it only when every request passes through that proxy, which must strip the header from
      clients: otherwise anyone could claim to be anyone. Off by default.
    """

    public_url: str | None = None
    trust_proxy_header: str | None = None

    def __post_init__(self) -> None:
        header = self.trust_proxy_header
        if header is not None and _HEADER.fullmatch(header) is None:
            raise ValueError(f"trust_proxy_header must be a header name, got {header!r}")
        url = self.public_url
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must start with http:// or https://, got {url!r}")

    @classmethod
    def of(cls, value: InboxSettings | bool | None) -> InboxSettings | None:
        """`True` means the defaults; `None`/`False` means off."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        return value

    @property
    def resolved_public_url(self) -> str | None:
        url = self.public_url or os.environ.get(PUBLIC_URL_ENV) or None
        return url.rstrip("/") if url else None
