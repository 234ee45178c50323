"""The HTTP inbox API: JSON under `inbox/api/`, for reviewers (SPEC §12). Mounted by `hitl.asgi` only
when the inbox is on (`Hitl(..., inbox=True)`); routes are relative to the mount, like every route.

| Route (relative to the mount)                 | Method | Reply                                     |
|-----------------------------------------------|--------|-------------------------------------------|
| `inbox/api/me`                                | GET    | `{id, name, email?, namespaces}`          |
| `inbox/api/requests?status=&namespace=&limit=&cursor=` | GET | `{items, nextCursor?}`            |
| `inbox/api/requests/count?status=&namespace=` | GET    | `{count}`                                 |
| `inbox/api/requests/{id}`                     | GET    | the request                               |
| `inbox/api/requests/{id}/audit`               | GET    | `{items: [{position, event}]}`            |
| `inbox/api/requests/{id}/resolve`             | POST   | `{result}`; body `{actionId, feedbacks?}` |
| `inbox/api/batches/{id}`                      | GET    | `{batch, items}`                          |
| `inbox/api/batches/{id}/resolve`              | POST   | `{results}`; body `{decisions: [...]}`    |
| `inbox/api/threads/{id}/timeline`             | GET    | `{items}`                                 |

A batch decision is `{requestId, actionId, feedbacks?}`.

Credentials: `Authorization: Bearer <reviewer token>`, the `hitl_session` cookie, or a trusted proxy's
identity header (see `reviewer_auth.py`). Errors are `{"error": ...}`: 400 bad input (with `fields` for
invalid feedback), 401 no or bad credentials (`WWW-Authenticate`), 404 unknown or outside the reviewer's
namespaces, 405, 409 decided differently before, 413 body too large, 415 a POST that is not JSON (which
also keeps cross-site HTML forms out). Records are shown without their resume `token`: it is the
engine's credential, not the reviewer's business.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import msgspec

from ..errors import AlreadyResolvedError, FeedbackValidationError, NotFoundError, ValidationError
from ..history.events import AuditRecord
from ..records import HumanRequestRecord, RequestStatus
from . import wire
from .asgi import Scope, _Body, _header, _Responder
from .core import BatchDecision
from .reviewer_auth import Principal, ReviewerAuth
from .reviewer_inbox import ReviewerInbox, field_errors

__all__ = ["InboxAPI", "InboxRoutes", "PageHandler", "public_event", "public_record"]

_CONTROL = re.compile("[\x00-\x1f\x7f]")
_MAX_ID = 512
_UNAUTHORIZED = ((b"www-authenticate", b'Bearer realm="hitl-inbox"'),)
_RESOLVE_KEYS = frozenset({"actionId", "feedbacks"})
_DECISION_KEYS = frozenset({"requestId", "actionId", "feedbacks"})


def public_record(record: HumanRequestRecord) -> dict[str, Any]:
    """A request as a reviewer sees it: everything but the resume token."""
    data: dict[str, Any] = msgspec.to_builtins(record)
    data.pop("token", None)
    return data


def public_event(record: AuditRecord) -> dict[str, Any]:
    """An audit trail entry as a reviewer sees it: resume tokens left out."""
    event: dict[str, Any] = msgspec.to_builtins(record.event)
    for name in ("request", "record"):
        if isinstance(event.get(name), dict):
            event[name].pop("token", None)
    event.pop("tokenIndex", None)
    return {"position": record.position, "event": event}


def _check_id(value: str) -> str:
    if not value or len(value) > _MAX_ID or _CONTROL.search(value) is not None:
        raise ValidationError(f"Invalid id: at most {_MAX_ID} characters, no control characters")
    return value


def _query(scope: Scope) -> dict[str, str]:
    raw = bytes(scope.get("query_string") or b"").decode("latin-1")
    try:
        parsed = parse_qs(raw, keep_blank_values=False, max_num_fields=16)
    except ValueError:
        raise ValidationError("Too many query parameters") from None
    return {key: values[-1] for key, values in parsed.items()}


def _status(value: str | None) -> RequestStatus | None:
    if value in (None, ""):
        return None
    if value == "pending":
        return "pending"
    if value == "resolved":
        return "resolved"
    raise ValidationError('status must be "pending" or "resolved"')


def _limit(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    assert value is not None
    if not value.isdigit() or len(value) > 6:
        raise ValidationError("limit must be a positive integer")
    return int(value)


def _object(data: object, allowed: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError(f"The {what} must be a JSON object")
    if "by" in data:
        raise ValidationError('"by" cannot be set: a decision is made by the signed-in reviewer')
    for key in data:
        if key not in allowed:
            raise ValidationError(f'Unknown key "{key}" in the {what}')
    return data


def _decision_parts(data: Mapping[str, Any], what: str) -> tuple[str, dict[str, Any] | None]:
    action_id, feedbacks = data.get("actionId"), data.get("feedbacks")
    if not isinstance(action_id, str) or not action_id:
        raise ValidationError(f"actionId must be a non-empty string in the {what}")
    if feedbacks is not None and not isinstance(feedbacks, dict):
        raise ValidationError(f"feedbacks must be an object in the {what}")
    return action_id, feedbacks


def _match(segments: list[str]) -> tuple[str, str, str] | None:
    """(route name, method, subject id) for the path after `inbox/api/`."""
    match segments:
        case ["me"]:
            return "me", "GET", ""
        case ["requests"]:
            return "list", "GET", ""
        case ["requests", "count"]:
            return "count", "GET", ""
        case ["requests", subject]:
            return "get", "GET", subject
        case ["requests", subject, "audit"]:
            return "audit", "GET", subject
        case ["requests", subject, "resolve"]:
            return "resolve", "POST", subject
        case ["batches", subject]:
            return "batch", "GET", subject
        case ["batches", subject, "resolve"]:
            return "resolve-batch", "POST", subject
        case ["threads", subject, "timeline"]:
            return "timeline", "GET", subject
    return None


class InboxAPI:
    """The JSON routes under `inbox/api/` (see the module docs)."""

    def __init__(self, auth: ReviewerAuth, inbox: ReviewerInbox) -> None:
        self.auth = auth
        self.inbox = inbox

    async def handle(self, scope: Scope, body: _Body, out: _Responder, segments: list[str]) -> None:
        """Serve one request; `segments` is the path after `inbox/api/`."""
        route = _match(segments)
        if route is None:
            await out.error(404, "Not found")
            return
        name, allowed, subject = route
        method = scope.get("method", "GET")
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            await out.error(405, "Method not allowed", ((b"allow", allowed.encode()),))
            return
        principal = await self.auth.authenticate(scope)
        if principal is None:
            await out.error(401, "Unauthorized: sign in, or send Authorization: Bearer <reviewer token>", _UNAUTHORIZED)
            return
        data: object = None
        if allowed == "POST":
            content_type = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
            if content_type != b"application/json":
                await out.error(415, "Send the body as JSON (content-type: application/json)")
                return
            try:
                data = msgspec.json.decode(await body.read())
            except msgspec.MsgspecError:
                await out.error(400, "Invalid JSON body")
                return
        try:
            reply = await self._dispatch(name, principal, _check_id(subject) if subject else "", scope, data)
        except FeedbackValidationError as exc:
            await out.json(
                400,
                wire.encode({"error": str(exc), "fields": await self._field_errors(principal, name, subject, data)}),
            )
        except ValidationError as exc:
            await out.error(400, str(exc))
        except NotFoundError as exc:
            await out.error(404, str(exc))
        except AlreadyResolvedError as exc:
            await out.error(409, str(exc))
        else:
            await out.json(200, reply)

    async def _dispatch(self, name: str, principal: Principal, subject: str, scope: Scope, data: object) -> bytes:
        inbox = self.inbox
        if name == "me":
            return wire.encode(
                {
                    "id": principal.reviewer_id,
                    "name": principal.name,
                    **({"email": principal.email} if principal.email else {}),
                    "namespaces": sorted(principal.namespaces),
                }
            )
        if name in ("list", "count"):
            query = _query(scope)
            status, namespace = _status(query.get("status")), query.get("namespace") or None
            if name == "count":
                return wire.encode({"count": await inbox.count(principal, status=status, namespace=namespace)})
            page = await inbox.list(
                principal,
                status=status,
                namespace=namespace,
                limit=_limit(query.get("limit")),
                cursor=query.get("cursor") or None,
            )
            reply: dict[str, Any] = {"items": [public_record(r) for r in page.items]}
            if page.next_cursor is not None:
                reply["nextCursor"] = page.next_cursor
            return wire.encode(reply)
        if name == "get":
            return wire.encode(public_record(await inbox.get(principal, subject)))
        if name == "audit":
            await inbox.get(principal, subject)  # a request's trail, under this route
            return wire.encode({"items": [public_event(r) for r in await inbox.audit(principal, subject)]})
        if name == "batch":
            view = await inbox.get_batch(principal, subject)
            return wire.encode({"batch": view.batch, "items": [public_record(r) for r in view.items]})
        if name == "timeline":
            return wire.encode({"items": await inbox.timeline(principal, subject)})
        if name == "resolve":
            action_id, feedbacks = _decision_parts(_object(data, _RESOLVE_KEYS, "body"), "body")
            result = await inbox.resolve(principal, subject, action_id=action_id, feedbacks=feedbacks)
            return wire.encode_result(result)
        decisions = _decisions(data)
        return wire.encode_results(await inbox.resolve_batch(principal, subject, decisions))

    async def _field_errors(self, principal: Principal, name: str, subject: str, data: object) -> dict[str, Any]:
        """Every field error of the rejected decision(s): by field, or by request id then field for a batch."""
        try:
            if name == "resolve" and isinstance(data, dict):
                record = await self.inbox.get(principal, subject)
                return field_errors(record, str(data.get("actionId")), data.get("feedbacks"))
            if name == "resolve-batch":
                view = await self.inbox.get_batch(principal, subject)
                items = {item.id: item for item in view.items}
                out: dict[str, Any] = {}
                for decision in _decisions(data):
                    item = items.get(decision.request_id)
                    if item is not None and item.status == "pending":
                        errors = field_errors(item, decision.action_id, decision.feedbacks)
                        if errors:
                            out[decision.request_id] = errors
                return out
        except (NotFoundError, ValidationError):
            pass
        return {}


def _decisions(data: object) -> list[BatchDecision]:
    body = _object(data, frozenset({"decisions"}), "body")
    raw = body.get("decisions")
    if not isinstance(raw, list) or len(raw) > 10_000:
        raise ValidationError("decisions must be an array (at most 10000)")
    decisions: list[BatchDecision] = []
    for index, item in enumerate(raw):
        what = f"decisions[{index}]"
        entry = _object(item, _DECISION_KEYS, what)
        request_id = entry.get("requestId")
        if not isinstance(request_id, str) or not request_id:
            raise ValidationError(f"requestId must be a non-empty string in {what}")
        action_id, feedbacks = _decision_parts(entry, what)
        decisions.append(BatchDecision(request_id=_check_id(request_id), action_id=action_id, feedbacks=feedbacks))
    return decisions


PageHandler = Callable[[Scope, _Body, _Responder, list[str]], Awaitable[None]]
"""Serves a path under `inbox/` that is not `inbox/api/...` (the web inbox); `segments` follow `inbox/`."""


class InboxRoutes:
    """Everything under `inbox/`: the JSON API under `api/`, the web inbox (`pages`, when there is one)
    for the rest; 404 otherwise."""

    def __init__(self, api: InboxAPI, pages: PageHandler | None = None) -> None:
        self.api = api
        self.pages = pages

    async def __call__(self, scope: Scope, body: _Body, out: _Responder, segments: list[str]) -> None:
        if segments[:1] == ["api"]:
            await self.api.handle(scope, body, out, segments[1:])
        elif self.pages is not None:
            await self.pages(scope, body, out, segments)
        else:
            await out.error(404, "Not found")
