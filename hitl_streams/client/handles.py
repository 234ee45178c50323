"""What the client hands back: `Pending` (a created request or batch) and `Notified` (a sent notification).

Both are plain data, usable as `after=` anchors. A `Pending` can be stored and reloaded
(`msgspec.json.encode(pending)`, `msgspec.json.decode(data, type=Pending)`) and waited on later: it
carries the resume tokens of its suspensions.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from ..results import HumanResult

__all__ = ["BatchItem", "Notified", "Pending"]

R = TypeVar("R", HumanResult, list[HumanResult])


class Pending(msgspec.Struct, Generic[R], kw_only=True, frozen=True, rename="camel"):
    """A request (or batch) waiting for a human.

    - `id`: the request id, or the batch id when `batch` is true;
    - `external_ref`: the channel's own delivery id (`""` when it gave none);
    - `ids`: the request ids, one per item for a batch, in item order;
    - `tokens`: the resume tokens, in the same order.

    The type parameter says what `wait_for_human(pending)` returns: a `HumanResult`, or a list of them for
    a batch.
    """

    id: str
    external_ref: str
    batch: bool = False
    ids: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()


class Notified(msgspec.Struct, frozen=True, rename="camel"):
    """A notification that was sent: its delivery id (an anchor for `after=`) and the channel's ref."""

    id: str
    external_ref: str


class BatchItem(msgspec.Struct, kw_only=True, frozen=True):
    """One item of a batch: its own message and, optionally, defaults for the approve action's fields."""

    message: str
    defaults: dict[str, Any] | None = None
