"""`require_approval`: an async function (an agent's tool, a risky step) that runs only after a human approves.

    @require_approval(hitl.client(), timeout="15m")
    async def send_email(to: str, subject: str, body: str) -> str: ...

Each call first asks a human (through any `HitlClient`: in process, Temporal, DBOS, ...):

- the request's `context` is `{"function": <qualified name>, "arguments": {<name>: <value>}}`, the bound
  arguments (defaults applied) made JSON-safe with msgspec (a value msgspec cannot encode shows as its
  `repr`); the default message is `Approve <name>(<arguments>)?`, or pass `message=` (a string, or a
  function of the bound arguments' dict);
- the default actions are `approve`, whose fields are one text field per argument whose value is a
  `str` (its default the value passed, so a reviewer can correct it), and `deny`, with an optional
  `reason`. Pass `actions=` for your own: the action with id `approve` means yes, any other means no;
- on `approve`, every feedback field named like a parameter replaces that argument, and the function runs
  with the result; otherwise `ApprovalDenied` (carrying the `Resolved` result, reason and all) is raised;
  a timeout raises `ApprovalTimedOut` (carrying the `TimedOut`). Both are `HitlError`s.

`client_or_factory` is a `HitlClient` or a function returning one, called on every call (engine clients
must be built inside the workflow, e.g. `require_approval(lambda: temporal_hitl_client(), ...)`). Every
decision is in the server's audit trail.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import msgspec

from ..actions import Action, ActionsBuilder, TextAreaField, TextField
from ..durations import Duration
from ..errors import ApprovalDenied, ApprovalTimedOut, ValidationError
from ..reminders import ReminderEntry
from ..results import Resolved, TimedOut
from .client import HitlClient

__all__ = ["APPROVE", "approval_actions", "approval_context", "require_approval"]

APPROVE = "approve"
_MAX_MESSAGE = 500

P = ParamSpec("P")
T = TypeVar("T")

ClientSource = HitlClient | Callable[[], HitlClient]
Message = str | Callable[[Mapping[str, Any]], str] | None


def _json_safe(value: Any) -> Any:
    return msgspec.to_builtins(value, enc_hook=repr, str_keys=True)


def approval_context(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The request context of one gated call."""
    return {"function": name, "arguments": {key: _json_safe(value) for key, value in arguments.items()}}


def _editable(signature: inspect.Signature) -> set[str]:
    """Parameters a reviewer's field can replace (not `*args` / `**kwargs`)."""
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {name for name, p in signature.parameters.items() if p.kind not in kinds}


def approval_actions(arguments: Mapping[str, Any], editable: set[str]) -> list[Action]:
    """The default actions: approve (a text field per `str` argument) and deny (an optional reason)."""
    fields = {
        key: TextField(label=key, default=value)
        for key, value in arguments.items()
        if key in editable and isinstance(value, str)
    }
    builder = ActionsBuilder().approve(fields=fields).deny(fields={"reason": TextAreaField(label="Reason", default="")})
    return builder.build()


def _message(message: Message, name: str, arguments: Mapping[str, Any]) -> str:
    if callable(message):
        return message(arguments)
    if message is not None:
        return message
    shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    text = f"Approve {name}({shown})?"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 4] + "...?"


def _client(source: ClientSource) -> HitlClient:
    client = source if isinstance(source, HitlClient) else source()
    if not isinstance(client, HitlClient):
        raise ValidationError("require_approval needs a HitlClient or a function returning one")
    return client


def require_approval(
    client_or_factory: ClientSource,
    *,
    message: Message = None,
    actions: Sequence[Action] | ActionsBuilder | None = None,
    timeout: Duration | None = None,
    namespace: str | None = None,
    channel: str | None = None,
    reminders: Sequence[ReminderEntry] = (),
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Gate an async function behind a human approval (see the module docstring)."""
    if not isinstance(client_or_factory, HitlClient) and not callable(client_or_factory):
        raise ValidationError("require_approval needs a HitlClient or a function returning one")
    fixed = actions.build() if isinstance(actions, ActionsBuilder) else None if actions is None else list(actions)
    if fixed is not None and all(a.id != APPROVE for a in fixed):
        raise ValidationError('require_approval needs an action with id "approve"')

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        if not inspect.iscoroutinefunction(fn):
            raise ValidationError(f"require_approval decorates async functions; {fn!r} is not one")
        signature = inspect.signature(fn)
        editable = _editable(signature)
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))

        @functools.wraps(fn)
        async def gated(*args: P.args, **kwargs: P.kwargs) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            result = await _client(client_or_factory).wait_for_human(
                message=_message(message, name, bound.arguments),
                actions=fixed if fixed is not None else approval_actions(bound.arguments, editable),
                context=approval_context(name, bound.arguments),
                namespace=namespace,
                channel=channel,
                timeout=timeout,
                reminders=reminders,
            )
            if isinstance(result, TimedOut):
                raise ApprovalTimedOut(result)
            assert isinstance(result, Resolved)
            if result.action_id != APPROVE:
                raise ApprovalDenied(result)
            for key, value in result.feedbacks.items():
                if key in editable:
                    bound.arguments[key] = value
            return await fn(*bound.args, **bound.kwargs)

        return gated

    return decorate
