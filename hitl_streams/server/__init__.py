"""The hitl-streams server: `Hitl`, its HTTP API, inbox, channels, resolvers and reliable resumption."""

from .asgi import BASE_PATH, HitlASGI
from .channels import (
    INBOX_CHANNEL_ID,
    Adapter,
    BaseAdapter,
    BatchHumanRequest,
    BatchItem,
    ChannelRoute,
    HumanRequest,
    InboxChannel,
    Notification,
    resolve_channel,
)
from .core import DEFAULT_ESCALATE_MESSAGE, DEFAULT_REMIND_MESSAGE, BatchDecision, Core, DeliveryError
from .decisions import validate_feedbacks
from .hitl import DEFAULT_MAX_BODY_BYTES, Hitl
from .inbox import BatchView, Inbox
from .inbox_settings import InboxSettings
from .resolvers import CallbackResolver, Resolver, ResumeRejected, WebhookResolver, sign_webhook, verify_webhook
from .resumption import MemoryResumeQueue, ResumeJob, ResumeQueue, Resumer, RetryPolicy
from .wire import Anchor, BatchAnchor

__all__ = [
    "BASE_PATH",
    "DEFAULT_ESCALATE_MESSAGE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_REMIND_MESSAGE",
    "INBOX_CHANNEL_ID",
    "Adapter",
    "Anchor",
    "BaseAdapter",
    "BatchAnchor",
    "BatchDecision",
    "BatchHumanRequest",
    "BatchItem",
    "BatchView",
    "CallbackResolver",
    "ChannelRoute",
    "Core",
    "DeliveryError",
    "Hitl",
    "HitlASGI",
    "HumanRequest",
    "Inbox",
    "InboxChannel",
    "InboxSettings",
    "MemoryResumeQueue",
    "Notification",
    "Resolver",
    "ResumeJob",
    "ResumeQueue",
    "ResumeRejected",
    "Resumer",
    "RetryPolicy",
    "WebhookResolver",
    "resolve_channel",
    "sign_webhook",
    "validate_feedbacks",
    "verify_webhook",
]
