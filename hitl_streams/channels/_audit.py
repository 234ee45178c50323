"""The audit record a channel leaves when it gives up on a delivery (`channel.failed`), shared by the
e-mail and Slack channels: the request stays in the web inbox (`fallback`), and the trail says why."""

from __future__ import annotations

from msgspec import UNSET

from .._time import now_iso
from ..history import events as ev
from ..server.audit import Auditable

__all__ = ["record_channel_failure"]

ERROR_CHARS = 500
"""A provider's error text is cut to this many characters: the reason, not a whole response body."""


async def record_channel_failure(
    state: Auditable, *, channel: str, request_id: str, batch_id: str | None, operation: str, error: str
) -> None:
    """Record that `channel` failed `operation` ("deliver", "update") for a request; the inbox serves it."""
    await state.record(
        ev.ChannelFailed(
            at=now_iso(),
            id=request_id,
            batch_id=UNSET if batch_id is None else batch_id,
            channel=channel,
            operation=operation,
            error=error[:ERROR_CHARS],
            fallback="inbox",
        )
    )
