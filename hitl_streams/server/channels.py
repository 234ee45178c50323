"""Channels: the `Adapter` protocol, what adapters receive, the built-in inbox channel, channel routing.

An adapter delivers human requests to a place where reviewers see them (a chat, an e-mail, the web
inbox). It is addressed by a *channel key*: its `id`, or `"{id}:{destination}"` where the destination
is opaque to the core (`"slack:C123"`, `"approvals:slack:C1:1700.1"`). The normalized *channel ref*
stored on records (and used as the key of `external_ids`) is `"{id}:{destination}"`, else
`"{id}:{default_channel}"`, else `"{id}"` (REF §5.1).

Only `id`, `send` and `notify` are essential; `BaseAdapter` gives every other member a neutral
default (no updates, no batch UI, no HTTP routes), so an adapter subclasses it and overrides what it
supports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from ..actions import Action
from ..errors import UnknownChannelError
from ..results import HumanResult

__all__ = [
    "INBOX_CHANNEL_ID",
    "Adapter",
    "BaseAdapter",
    "BatchHumanRequest",
    "BatchItem",
    "ChannelRoute",
    "HumanRequest",
    "InboxChannel",
    "Notification",
    "resolve_channel",
    "resolve_channel_key",
    "with_inbox",
]

INBOX_CHANNEL_ID = "inbox"


class HumanRequest(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """What an adapter renders and delivers for one request. `channel` is the adapter id."""

    id: str
    channel: str
    destination: str | None = None
    message: str
    actions: list[Action]
    context: dict[str, Any] | None = None


class BatchItem(msgspec.Struct, kw_only=True, rename="camel", frozen=True):
    """One item of a batch: its id, message, and the initial field values of its defaults action."""

    id: str
    message: str
    defaults: dict[str, Any]


class BatchHumanRequest(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """A whole batch delivered as one message; `actions` is the schema shared by the items."""

    batch_id: str
    channel: str
    destination: str | None = None
    message: str | None = None
    actions: list[Action]
    items: list[BatchItem]
    context: dict[str, Any] | None = None


class Notification(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """A message with no decision to take, optionally threaded under an earlier delivery."""

    message: str
    channel: str
    destination: str | None = None
    detail: dict[str, Any] | None = None


@runtime_checkable
class Adapter(Protocol):
    """A delivery channel. Subclass `BaseAdapter` to get neutral defaults for the optional members."""

    @property
    def id(self) -> str:
        """The routing key prefix (`channel="{id}"` or `"{id}:{destination}"`)."""
        ...

    @property
    def default_channel(self) -> str | None:
        """The destination used when a channel key names the adapter only (part of the channel ref)."""
        ...

    @property
    def channel_key(self) -> str | None:
        """Serve HTTP under `channels/{channel_key}/` with `handle`; `None` for no HTTP routes."""
        ...

    async def send(self, request: HumanRequest) -> str:
        """Deliver a request; return the channel-native id of the message (its external id)."""
        ...

    async def notify(self, notification: Notification) -> str | None:
        """Deliver a notification; return its external id when the channel has one."""
        ...

    async def update(self, external_id: str, result: HumanResult) -> None:
        """Reflect a decision on the delivered message (e.g. replace the buttons by the outcome)."""
        ...

    def can_send_batch(self, request: BatchHumanRequest) -> bool:
        """Whether `send_batch` can render this batch; `False` makes the core send item by item."""
        ...

    async def send_batch(self, request: BatchHumanRequest) -> str:
        """Deliver a whole batch as one message; return its external id."""
        ...

    async def update_batch(self, external_id: str, results: Sequence[HumanResult]) -> None:
        """Reflect the decisions of a batch (in item order) on its message."""
        ...

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """ASGI handler for `channels/{channel_key}/...` (any method, no bearer auth: authenticate yourself).

        `scope["root_path"]` is extended to end with `/channels/{channel_key}`.
        """
        ...


class BaseAdapter:
    """Neutral defaults for the optional members of `Adapter`. Subclasses set `id` and implement
    `send` and `notify`."""

    id: str = ""
    default_channel: str | None = None
    channel_key: str | None = None

    async def send(self, request: HumanRequest) -> str:
        raise NotImplementedError

    async def notify(self, notification: Notification) -> str | None:
        raise NotImplementedError

    async def update(self, external_id: str, result: HumanResult) -> None:
        return None

    def can_send_batch(self, request: BatchHumanRequest) -> bool:
        return False

    async def send_batch(self, request: BatchHumanRequest) -> str:
        raise NotImplementedError(f"adapter {self.id!r} has no batch delivery")

    async def update_batch(self, external_id: str, results: Sequence[HumanResult]) -> None:
        return None

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b'{"error":"Not found"}'
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class InboxChannel(BaseAdapter):
    """The always-on web inbox: nothing to deliver, reviewers read pending requests via `hitl.inbox`.

    `send` returns the request id as external id and `send_batch` the batch id, so `externalRef`
    equals the id; notifications have no external id.
    """

    id = INBOX_CHANNEL_ID

    async def send(self, request: HumanRequest) -> str:
        return request.id

    async def notify(self, notification: Notification) -> str | None:
        return None

    def can_send_batch(self, request: BatchHumanRequest) -> bool:
        return True

    async def send_batch(self, request: BatchHumanRequest) -> str:
        return request.batch_id


def with_inbox(adapters: Sequence[Adapter]) -> tuple[Adapter, ...]:
    """The configured adapters plus the inbox channel, appended last unless one already has its id."""
    configured = tuple(adapters)
    if any(a.id == INBOX_CHANNEL_ID for a in configured):
        return configured
    return (*configured, InboxChannel())


@dataclass(frozen=True, slots=True)
class ChannelRoute:
    """A channel key resolved to its adapter, its normalized channel ref and its destination."""

    adapter: Adapter
    channel_ref: str
    destination: str | None = None


def _route(adapter: Adapter, destination: str | None) -> ChannelRoute:
    if destination is not None:
        ref = f"{adapter.id}:{destination}"
    elif adapter.default_channel is not None:
        ref = f"{adapter.id}:{adapter.default_channel}"
    else:
        ref = adapter.id
    return ChannelRoute(adapter, ref, destination)


def resolve_channel(adapters: Sequence[Adapter], channel: str | None) -> ChannelRoute:
    """A caller's channel key: none → the first adapter; an exact id; else the longest `"{id}:"` prefix."""
    if not adapters:
        raise UnknownChannelError("No hitl adapters configured.")
    if channel is None:
        return _route(adapters[0], None)
    for adapter in adapters:
        if adapter.id == channel:
            return _route(adapter, None)
    for adapter in sorted(adapters, key=lambda a: len(a.id), reverse=True):
        prefix = f"{adapter.id}:"
        if channel.startswith(prefix):
            return _route(adapter, channel[len(prefix) :])
    known = ", ".join(a.id for a in adapters)
    raise UnknownChannelError(f'Unknown channel "{channel}". Configured adapters: {known}')


def resolve_channel_key(adapters: Sequence[Adapter], channel_ref: str) -> ChannelRoute:
    """A stored channel ref: resolved as a channel key, keeping the stored ref as is."""
    route = resolve_channel(adapters, channel_ref)
    return ChannelRoute(route.adapter, channel_ref, route.destination)
