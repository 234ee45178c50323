"""Channels reviewers already live in: Slack (`SlackChannel`, extra `slack`) and e-mail (`EmailChannel`,
extra `email`). Imported lazily, so `hitl_streams.channels` works without either extra installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .email import EmailChannel
    from .slack import SlackChannel

__all__ = ["EmailChannel", "SlackChannel"]


def __getattr__(name: str) -> Any:
    if name == "SlackChannel":
        from .slack import SlackChannel

        return SlackChannel
    if name == "EmailChannel":
        from .email import EmailChannel

        return EmailChannel
    raise AttributeError(name)
