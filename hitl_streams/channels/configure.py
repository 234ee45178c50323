"""The channels `hitl-streams serve` enables from its options (or environment): Slack with a bot token
and a signing secret, e-mail with an SMTP URL and a sender. The inbox channel stays the default, so a
request without `channel` goes to the web inbox as before; `channel="slack:C123"`, `"slack"` (with
`--slack-channel`), `"email"` or `"email:ops@example.com"` picks one of these."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ValidationError
from ..server.channels import Adapter, InboxChannel

__all__ = ["ChannelOptions", "configured_channels"]


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_channel: str | None = None
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str | None = None
    public_url: str | None = None
    inbox: bool = False

    @property
    def any(self) -> bool:
        return bool(self.slack_bot_token or self.slack_signing_secret or self.smtp_url or self.mail_from)


def configured_channels(options: ChannelOptions) -> list[Adapter]:
    """The adapters to pass to `Hitl`; a half-done configuration is a `ValidationError` saying what is missing."""
    if not options.any:
        return []
    adapters: list[Adapter] = [InboxChannel()]
    if options.slack_bot_token or options.slack_signing_secret:
        if not (options.slack_bot_token and options.slack_signing_secret):
            raise ValidationError("Slack needs both --slack-bot-token and --slack-signing-secret")
        from .slack import SlackChannel

        adapters.append(
            SlackChannel(
                bot_token=options.slack_bot_token,
                signing_secret=options.slack_signing_secret,
                default_channel=options.slack_channel,
            )
        )
    if options.smtp_url or options.mail_from:
        if not (options.smtp_url and options.mail_from):
            raise ValidationError("E-mail needs both --smtp-url and --mail-from")
        public_url = options.public_url or os.environ.get("HITL_PUBLIC_URL")
        if not options.inbox or not public_url:
            raise ValidationError("E-mail links lead to the web inbox: it needs --inbox and --public-url")
        from .email import EmailChannel

        adapters.append(
            EmailChannel(
                smtp_url=options.smtp_url,
                mail_from=options.mail_from,
                public_url=public_url,
                link_secret=os.environ.get("HITL_SECRET") or None,
            )
        )
    return adapters
