"""`HitlClient`: ask a human from workflow code (REF §6), over the server's HTTP API, through an engine's
primitives. Every option is checked before anything is suspended or sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

import msgspec

from ..actions import Action, ActionsBuilder
from ..durations import Duration, parse_duration
from ..errors import HitlError, ValidationError
from ..reminders import ReminderEntry
from ..results import HumanResult
from ..schedule import Fire, expand_schedule
from .bodies import Anchorish, Ask, create_body, notify_body, parse_ask, server_schedule
from .handles import BatchItem, Notified, Pending
from .primitives import Primitives, Reattaches, TellsTime
from .transport import DEFAULT_BASE_PATH, Setting, Transport
from .wait import wait_loop

__all__ = ["HitlClient", "create_hitl_client"]

R = TypeVar("R", HumanResult, list[HumanResult])

Actions = Sequence[Action | Mapping[str, Any]] | ActionsBuilder
Items = Sequence[BatchItem | Mapping[str, Any]]
Reminders = Sequence[ReminderEntry]


class _Created(msgspec.Struct, rename="camel"):
    id: str
    external_ref: str


class _BatchCreated(msgspec.Struct, rename="camel"):
    batch_id: str
    ids: list[str]
    external_ref: str


def _reply(answer: object, kind: type[msgspec.Struct], path: str) -> Any:
    try:
        return msgspec.convert(answer, kind)
    except msgspec.ValidationError as exc:
        raise HitlError(f"hitl: POST {path} answered an unexpected body: {exc}") from None


def _pending(value: object) -> Pending[Any]:
    """A `Pending`, or its JSON form (a mapping, as stored) converted to one."""
    if isinstance(value, Mapping):
        try:
            return msgspec.convert(value, Pending)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"not a pending request: {exc}") from None
    raise ValidationError("wait_for_human takes a Pending from request_human (or its stored JSON form)")


def _timeout(timeout: Duration | None) -> float | None:
    return None if timeout is None else parse_duration(timeout, what="timeout")


def _checked_reminders(reminders: Reminders) -> list[ReminderEntry]:
    if isinstance(reminders, str | bytes) or not isinstance(reminders, Sequence):
        raise ValidationError("reminders must be a list of remind/escalate entries")
    return list(reminders)


def _schedule(reminders: Reminders, anchor: datetime, timeout: float | None) -> Iterator[Fire]:
    """The lazy schedule; `expand_schedule` checks every entry now, before any request."""
    return expand_schedule(_checked_reminders(reminders), anchor, timeout)


class HitlClient:
    """Creates human requests and waits for their results. Build it with `create_hitl_client`."""

    def __init__(
        self,
        primitives: Primitives,
        *,
        url: Setting = None,
        base_path: str = DEFAULT_BASE_PATH,
        secret: Setting = None,
    ) -> None:
        self._primitives = primitives
        self._transport = Transport(primitives, url=url, base_path=base_path, secret=secret)
        # The suspensions of requests this client created, until they are waited on.
        self._suspensions: dict[str, Awaitable[Any]] = {}

    @property
    def primitives(self) -> Primitives:
        return self._primitives

    def _now(self) -> datetime:
        if isinstance(self._primitives, TellsTime):
            now = self._primitives.now()
            if now.tzinfo is None:
                raise ValidationError("primitives.now() must return a timezone-aware datetime")
            return now
        return datetime.now(UTC)

    # --- create ---------------------------------------------------------------------------------------
    @overload
    async def request_human(
        self,
        *,
        message: str,
        actions: Actions,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        namespace: str | None = None,
        after: Anchorish = None,
        items: None = None,
        defaults_action_id: str | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
    ) -> Pending[HumanResult]: ...

    @overload
    async def request_human(
        self,
        *,
        message: str | None = None,
        actions: Actions,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        namespace: str | None = None,
        after: Anchorish = None,
        items: Items,
        defaults_action_id: str | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
    ) -> Pending[list[HumanResult]]: ...

    async def request_human(
        self,
        *,
        message: str | None = None,
        actions: Actions,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        namespace: str | None = None,
        after: Anchorish = None,
        items: Items | None = None,
        defaults_action_id: str | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
    ) -> Pending[Any]:
        """Create a request (or, with `items`, a batch: one request per item) and return without waiting.

        With `timeout` or `reminders`, the SERVER keeps them (a hitl-streams server; the TypeScript
        server ignores them): the request times out and reminds on its own, so a script can create it
        and walk away. Waiting later on the returned `Pending` gets the server's `TimedOut`.
        """
        schedule = server_schedule(_timeout(timeout), _checked_reminders(reminders))
        ask = parse_ask(
            message=message,
            actions=actions,
            context=context,
            channel=channel,
            namespace=namespace,
            after=after,
            items=items,
            defaults_action_id=defaults_action_id,
        )
        return await self._create(dataclasses.replace(ask, schedule=schedule))

    async def _create(self, ask: Ask) -> Pending[Any]:
        suspended = [self._primitives.suspend() for _ in range(ask.size)]
        tokens = tuple(token for token, _ in suspended)
        path, body = create_body(ask, tokens)
        answer = await self._transport.post(path, body)
        if ask.batch:
            created = _reply(answer, _BatchCreated, path)
            if len(created.ids) != len(tokens):
                raise HitlError(f"hitl: POST {path} answered {len(created.ids)} ids for {len(tokens)} items")
            pending: Pending[Any] = Pending(
                id=created.batch_id,
                external_ref=created.external_ref,
                batch=True,
                ids=tuple(created.ids),
                tokens=tokens,
            )
        else:
            one = _reply(answer, _Created, path)
            pending = Pending(id=one.id, external_ref=one.external_ref, ids=(one.id,), tokens=tokens)
        for token, awaitable in suspended:
            self._suspensions[token] = awaitable
        return pending

    # --- wait -----------------------------------------------------------------------------------------
    @overload
    async def wait_for_human(
        self,
        pending: Pending[R],
        *,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
    ) -> R: ...

    @overload
    async def wait_for_human(
        self,
        pending: Mapping[str, Any],
        *,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
    ) -> Any: ...

    @overload
    async def wait_for_human(
        self,
        *,
        message: str,
        actions: Actions,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        namespace: str | None = None,
        after: Anchorish = None,
        items: None = None,
        defaults_action_id: str | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
        server_side: bool = False,
    ) -> HumanResult: ...

    @overload
    async def wait_for_human(
        self,
        *,
        message: str | None = None,
        actions: Actions,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        namespace: str | None = None,
        after: Anchorish = None,
        items: Items,
        defaults_action_id: str | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
        server_side: bool = False,
    ) -> list[HumanResult]: ...

    async def wait_for_human(
        self,
        pending: Pending[Any] | Mapping[str, Any] | None = None,
        *,
        message: str | None = None,
        actions: Actions | None = None,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        namespace: str | None = None,
        after: Anchorish = None,
        items: Items | None = None,
        defaults_action_id: str | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 (SPEC §11's name)
        reminders: Reminders = (),
        server_side: bool = False,
    ) -> Any:
        """Wait for a human: on `pending` (from `request_human`), or create a request and wait on it.

        `timeout` (e.g. `"30m"`, seconds, a `timedelta`) ends the wait with the server's verdict (a
        `TimedOut`, or the human's decision if it came first); `reminders` (`remind.*`, `escalate.*`) are
        sent while it waits. A batch returns its results in item order.

        `server_side=True` hands the timeout and reminders to the server instead (a hitl-streams server,
        `hitl_streams.server.schedules`): the workflow only waits for the resumption, with no timers of
        its own, and the request times out and reminds even if the workflow stops.
        """
        if pending is not None and not isinstance(pending, Pending):
            pending = _pending(pending)
        seconds = _timeout(timeout)
        anchor = self._now()
        schedule = _schedule(reminders, anchor, seconds)
        kept: dict[str, Any] | None = None
        if server_side:
            if pending is not None:
                raise ValidationError(
                    "server_side applies when wait_for_human creates the request; "
                    "pass timeout and reminders to request_human instead"
                )
            kept = server_schedule(seconds, _checked_reminders(reminders))
            seconds, schedule = None, iter(())
        if pending is None:
            if actions is None:
                raise ValidationError("wait_for_human needs a pending request, or message and actions")
            ask = parse_ask(
                message=message,
                actions=actions,
                context=context,
                channel=channel,
                namespace=namespace,
                after=after,
                items=items,
                defaults_action_id=defaults_action_id,
            )
            pending = await self._create(dataclasses.replace(ask, schedule=kept))
        elif any(v is not None for v in (message, actions, context, channel, namespace, after, items)):
            raise ValidationError("wait_for_human takes either a pending request or the options of a new one")
        results = await wait_loop(
            self._primitives,
            self._transport,
            pending,
            self._suspensions_of(pending),
            timeout=seconds,
            schedule=schedule,
            anchor=anchor,
            clock=self._now if isinstance(self._primitives, TellsTime) else None,
        )
        return results if pending.batch else results[0]

    def _suspensions_of(self, pending: Pending[Any]) -> list[Awaitable[Any]]:
        """This client's suspensions for `pending`, or the engine's reattached ones for a reloaded Pending."""
        if not pending.tokens:
            raise ValidationError("this Pending carries no resume tokens; it cannot be waited on")
        found: list[Awaitable[Any]] = []
        for token in pending.tokens:
            awaitable = self._suspensions.pop(token, None)
            if awaitable is None:
                if not isinstance(self._primitives, Reattaches):
                    raise ValidationError(
                        "this Pending was created by another client and these primitives cannot reattach to it"
                    )
                awaitable = self._primitives.reattach(token)
            found.append(awaitable)
        return found

    # --- notify ---------------------------------------------------------------------------------------
    async def notify(
        self,
        *,
        message: str,
        after: Anchorish = None,
        on: str | None = None,
        channel: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Notified:
        """Post a message, threaded under `after` (a pending request, result or notification) or `on` (an id)."""
        body = notify_body(message=message, after=after, on=on, channel=channel, detail=detail)
        answer = await self._transport.post("/notifications", body)
        sent = _reply(answer, _Created, "/notifications")
        return Notified(id=sent.id, external_ref=sent.external_ref)


def create_hitl_client(
    primitives: Primitives,
    *,
    url: Setting = None,
    base_path: str = DEFAULT_BASE_PATH,
    secret: Setting = None,
) -> HitlClient:
    """A client on an engine's primitives. `url`/`secret` (strings or functions, read on every call)
    default to `HITL_URL`/`HITL_SECRET`, read lazily too."""
    return HitlClient(primitives, url=url, base_path=base_path, secret=secret)
