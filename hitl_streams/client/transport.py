"""The client's HTTP calls (REF §6.1): URL and secret read lazily per call, a JSON POST through the engine's
durable `request`, a non-2xx answer raised as `HitlHttpError` with the status and body.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ..errors import HitlError, HitlHttpError, ValidationError
from .primitives import HitlRequest, Primitives

__all__ = ["DEFAULT_BASE_PATH", "Setting", "Transport"]

DEFAULT_BASE_PATH = "/.well-known/hitl/v1"

Setting = str | Callable[[], str | None] | None
"""A string, or a function called on every request (so a workflow can read it lazily)."""


def _read(setting: Setting, env: str) -> str | None:
    value = setting() if callable(setting) else setting
    if value is None:
        value = os.environ.get(env)
    return value


_encoder = msgspec.json.Encoder()


class Transport:
    """POSTs JSON bodies to `<url><base_path><path>` through `primitives.request`."""

    def __init__(self, primitives: Primitives, *, url: Setting, base_path: str, secret: Setting) -> None:
        self._primitives = primitives
        self._url = url
        self._base_path = base_path
        self._secret = secret

    def build(self, path: str, body: Mapping[str, Any]) -> HitlRequest:
        """The request for `path` (a path like `/requests`, ids not URL-encoded, as the reference does)."""
        url = _read(self._url, "HITL_URL")
        if not url:
            raise ValidationError("hitl: no server URL; pass url= to create_hitl_client or set HITL_URL")
        if url.endswith("/"):
            url = url[:-1]
        headers = {"content-type": "application/json"}
        secret = _read(self._secret, "HITL_SECRET")
        if secret:
            headers["authorization"] = f"Bearer {secret}"
        return HitlRequest(
            url=url + self._base_path + path, method="POST", headers=headers, body=_encoder.encode(body).decode()
        )

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """The decoded JSON answer; `HitlHttpError` for a non-2xx status."""
        response = await self._primitives.request(self.build(path, body))
        if not response.ok:
            raise HitlHttpError(path, response.status, response.body)
        try:
            return msgspec.json.decode(response.body)
        except msgspec.DecodeError:
            raise HitlError(f"hitl: POST {path} answered {response.status} with a body that is not JSON") from None
