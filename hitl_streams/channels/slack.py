"""The Slack channel: requests as Block Kit cards, decisions by reviewers from Slack's buttons and modals.

`SlackChannel(bot_token=..., signing_secret=..., default_channel="C123")`, passed to `Hitl(adapters=[...])`.
Destinations (`channel="slack:..."`): a channel id or `#name`, a user id (`U123`: a direct message), or
a thread `C123:1700000000.000100`. A request's external id is `"{channel id}:{message ts}"`: it is stored
in the request's history, so any replica, before or after a restart, edits the right message.

Interactivity (Slack app → "Interactivity & Shortcuts" → Request URL) is served at
`{public URL}/channels/slack/interactivity`. Every request's signature is checked first (forged or stale:
401, nothing read, nothing changed). A click decides only when the Slack user is a reviewer allowed in
the request's namespace (matched by their Slack user id, `hitl-streams reviewers add ana --slack-user U123`, else by the
e-mail of their Slack profile; or by `users={"U123": "ana"}`);
anyone else gets an ephemeral "not allowed". The decision goes through the reviewer-scoped resolve of the
inbox API, so `by` is that reviewer and a double click records one decision.

Rate limits and transient errors are retried with backoff; a delivery that fails for good leaves the
request to the web inbox (it is always there) and records a `channel.failed` audit event instead of
failing the workflow's create.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..actions import Action, action_by_id
from ..errors import AlreadyResolvedError, FeedbackValidationError, HitlError, NotFoundError, ValidationError
from ..results import HumanResult
from ..reviewers import ReviewerDirectory, ReviewerRecord
from ..server.audit import Auditable
from ..server.channels import BaseAdapter, BatchHumanRequest, HumanRequest, Notification
from ..server.core import BatchDecision
from ..server.reviewer_auth import Principal, header_value
from ..server.reviewer_inbox import ReviewerInbox
from . import slack_blocks as blocks
from ._audit import record_channel_failure
from ._outcome import outcome_line
from ._retry import PermanentError, RetryPolicy, TransientError, with_retries
from .slack_signature import verify

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from ..server.hitl import Hitl

__all__ = ["SlackChannel"]

log = logging.getLogger("hitl_streams.channels.slack")

_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
)
_MAX_BODY = 256 * 1024
_READ_METHODS = frozenset({"users.info"})
_NOT_ALLOWED = "You are not allowed to decide this request (ask an operator to add you as a reviewer)."


def _client(token: str, base_url: str | None) -> AsyncWebClient:
    try:
        from slack_sdk.web.async_client import AsyncWebClient
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("The Slack channel needs slack_sdk and aiohttp: pip install 'hitl-streams[slack]'") from None
    options: dict[str, Any] = {"token": token, "retry_handlers": []}
    if base_url is not None:
        options["base_url"] = base_url
    return AsyncWebClient(**options)


def _classify(exc: Exception) -> Exception:
    """Slack's errors: 429 / 5xx / network → transient; `ok: false` with a lasting error → permanent."""
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 0)
        error = ""
        data = getattr(response, "data", None)
        if isinstance(data, Mapping):
            error = str(data.get("error") or "")
        if status == 429 or error == "ratelimited":
            headers = getattr(response, "headers", {}) or {}
            raw = headers.get("Retry-After") or headers.get("retry-after")
            try:
                after = float(raw) if raw is not None else None
            except ValueError:
                after = None
            return TransientError(f"rate limited ({status})", after)
        if status >= 500 or error in _TRANSIENT_ERRORS:
            return TransientError(f"Slack answered {status} {error}".strip())
        return PermanentError(f"Slack answered {status} {error}".strip())
    if isinstance(exc, OSError | asyncio.TimeoutError) or type(exc).__module__.startswith("aiohttp"):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return PermanentError(f"{type(exc).__name__}: {exc}")


def _split_ref(ref: str) -> tuple[str, str] | None:
    """`"C123:1700.1"` → `("C123", "1700.1")`; anything else (an inbox fallback's id) → None."""
    channel, sep, ts = ref.partition(":")
    if not sep or not channel or not ts or not ts.replace(".", "").isdigit():
        return None
    return channel, ts


class SlackChannel(BaseAdapter):
    """Slack as a channel (see the module docs). `client` replaces the `AsyncWebClient` (tests point
    `base_url` at a fake Web API instead); `users` maps Slack user ids to reviewer names, for reviewers
    whose Slack e-mail differs from theirs."""

    def __init__(
        self,
        *,
        bot_token: str,
        signing_secret: str,
        default_channel: str | None = None,
        id: str = "slack",
        users: Mapping[str, str] | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        client: AsyncWebClient | None = None,
    ) -> None:
        if not signing_secret:
            raise ValueError("SlackChannel needs the app's signing secret")
        self.id = id
        self.default_channel = default_channel
        self.channel_key = id
        self._secret = signing_secret
        self._users = dict(users or {})
        self._retry = retry or RetryPolicy()
        self.client = client if client is not None else _client(bot_token, base_url)
        self._hitl: Hitl | None = None

    def bind(self, hitl: Hitl) -> None:
        """Called by `Hitl`: where requests, reviewers and the audit trail are."""
        self._hitl = hitl

    @property
    def _bound(self) -> Hitl:
        if self._hitl is None:
            raise RuntimeError("SlackChannel is not attached to a Hitl (pass it in Hitl(adapters=[...]))")
        return self._hitl

    async def _api(self, method: str, **kwargs: Any) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            if method in _READ_METHODS:  # read methods take query parameters, not JSON
                response = await self.client.api_call(method, http_verb="GET", params=kwargs)
            else:
                response = await self.client.api_call(method, json=kwargs)
            return dict(response.data) if isinstance(response.data, Mapping) else {}

        return await with_retries(f"slack {method}", call, _classify, self._retry)

    async def _audit_failure(self, request_id: str, batch_id: str | None, operation: str, error: str) -> None:
        state = self._hitl.state if self._hitl is not None else None
        if isinstance(state, Auditable):
            await record_channel_failure(
                state, channel=self.id, request_id=request_id, batch_id=batch_id, operation=operation, error=error
            )

    def _target(self, destination: str | None) -> tuple[str, str | None]:
        """The conversation and thread to post to."""
        where = destination or self.default_channel
        if not where:
            raise ValidationError(
                f'The Slack channel "{self.id}" has no default channel; pass channel="{self.id}:C123" (or a user id)'
            )
        split = _split_ref(where)
        return (split[0], split[1]) if split is not None else (where, None)

    # --- delivering -----------------------------------------------------------------------------------
    async def send(self, request: HumanRequest) -> str:
        channel, thread = self._target(request.destination)
        payload: dict[str, Any] = {
            "channel": channel,
            "text": blocks.escape(request.message[:3000]),
            "blocks": blocks.request_blocks(request.id, request.message, request.actions, request.context),
            "unfurl_links": False,
        }
        if thread is not None:
            payload["thread_ts"] = thread
        try:
            data = await self._api("chat.postMessage", **payload)
        except PermanentError as exc:
            log.warning("hitl: Slack delivery of %s failed for good; left to the inbox: %s", request.id, exc)
            await self._audit_failure(request.id, None, "deliver", str(exc))
            return request.id  # the inbox's own external id: the request is decided there
        return f"{data.get('channel') or channel}:{data['ts']}"

    async def notify(self, notification: Notification) -> str | None:
        channel, thread = self._target(notification.destination)
        payload: dict[str, Any] = {"channel": channel, "text": blocks.escape(notification.message[:3000])}
        if thread is not None:
            payload["thread_ts"] = thread
        try:
            data = await self._api("chat.postMessage", **payload)
        except PermanentError as exc:
            log.warning("hitl: Slack notification failed for good: %s", exc)
            return None
        return f"{data.get('channel') or channel}:{data['ts']}"

    async def update(self, external_id: str, result: HumanResult) -> None:
        ref = _split_ref(external_id)
        if ref is None:
            return  # delivered to the inbox instead (see `send`)
        record = await self._bound.state.get(result.id)
        message = record.message if record is not None else ""
        actions = record.actions if record is not None else []
        context = record.context if record is not None else None
        outcome = outcome_line(result, actions)
        try:
            await self._api(
                "chat.update",
                channel=ref[0],
                ts=ref[1],
                text=blocks.escape(f"{message[:2000]}\n{outcome}"),
                blocks=blocks.outcome_blocks(message, outcome, context),
            )
        except PermanentError as exc:
            await self._audit_failure(result.id, None, "update", str(exc))
            raise

    def can_send_batch(self, request: BatchHumanRequest) -> bool:
        return len(request.items) <= 20  # Slack caps a message at 50 blocks

    async def send_batch(self, request: BatchHumanRequest) -> str:
        channel, thread = self._target(request.destination)
        items = [(item.id, item.message, None) for item in request.items]
        payload: dict[str, Any] = {
            "channel": channel,
            "text": blocks.escape((request.message or f"{len(items)} requests")[:3000]),
            "blocks": blocks.batch_blocks(request.batch_id, request.message, request.actions, items, request.context),
            "unfurl_links": False,
        }
        if thread is not None:
            payload["thread_ts"] = thread
        try:
            data = await self._api("chat.postMessage", **payload)
        except PermanentError as exc:
            for item in request.items:
                await self._audit_failure(item.id, request.batch_id, "deliver", str(exc))
            return request.batch_id
        return f"{data.get('channel') or channel}:{data['ts']}"

    async def update_batch(self, external_id: str, results: Sequence[HumanResult]) -> None:
        ref = _split_ref(external_id)
        if ref is None or not results:
            return
        first = await self._bound.state.get(results[0].id)
        if first is not None and first.batch_id is not None:
            await self._render_batch(first.batch_id, ref)

    async def _render_batch(self, batch_id: str, ref: tuple[str, str]) -> None:
        """Edit the batch's message to the freshest state of every item (decided ones show their outcome)."""
        view = await self._bound.inbox.get_batch(batch_id)
        if view is None or not view.items:
            return
        actions = view.batch.actions or view.items[0].actions
        items = [
            (item.id, item.message, outcome_line(item.result, actions) if item.result is not None else None)
            for item in view.items
        ]
        await self._api(
            "chat.update",
            channel=ref[0],
            ts=ref[1],
            text=blocks.escape(view.batch.message or f"{len(items)} requests"),
            blocks=blocks.batch_blocks(view.batch.id, view.batch.message, actions, items, view.batch.context),
        )

    async def _item_decided(self, batch_id: str) -> None:
        """One item of a batch was decided from Slack: its card shows it at once (the core updates a batch's
        message only when the whole batch is decided through it)."""
        batch = await self._bound.state.get_batch(batch_id)
        if batch is None:
            return
        refs = dict(batch.external_ids or {})
        if batch.external_id is not None:
            refs.setdefault(batch.channel, batch.external_id)
        for channel_ref, external_id in refs.items():
            ref = _split_ref(external_id)
            if ref is not None and (channel_ref == self.id or channel_ref.startswith(f"{self.id}:")):
                try:
                    await self._render_batch(batch_id, ref)
                except PermanentError as exc:
                    log.warning("hitl: updating batch %s on Slack failed: %s", batch_id, exc)

    # --- interactivity --------------------------------------------------------------------------------
    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path") or "").rstrip("/")
        if not path.endswith("/interactivity"):
            await _respond(send, 404, b'{"error":"Not found"}')
            return
        if scope.get("method") != "POST":
            await _respond(send, 405, b'{"error":"Method not allowed"}', ((b"allow", b"POST"),))
            return
        body = await _read_body(receive, _MAX_BODY)
        if body is None:
            await _respond(send, 413, b'{"error":"Request body too large"}')
            return
        timestamp = header_value(scope, "x-slack-request-timestamp")
        signature = header_value(scope, "x-slack-signature")
        if not verify(self._secret, timestamp, signature, body):
            await _respond(send, 401, b'{"error":"Invalid signature"}')
            return
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=False)
            payload = json.loads(form["payload"][0])
            if not isinstance(payload, dict):
                raise ValueError("payload is not an object")
        except (KeyError, IndexError, ValueError, UnicodeDecodeError):
            await _respond(send, 400, b'{"error":"Invalid payload"}')
            return
        try:
            answer = await self._interaction(payload)
        except (AttributeError, TypeError, KeyError):  # signed, yet not shaped like Slack's payloads
            log.warning("hitl: a signed Slack payload of an unexpected shape", exc_info=True)
            await _respond(send, 400, b'{"error":"Invalid payload"}')
            return
        await _respond(send, 200, json.dumps(answer).encode() if answer is not None else b"")

    async def _interaction(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        kind = payload.get("type")
        if kind == "block_actions":
            for action in payload.get("actions") or []:
                if isinstance(action, dict):
                    await self._clicked(payload, action)
            return None
        if kind == "view_submission":
            return await self._submitted(payload)
        return None

    async def _principal(self, user_id: str) -> Principal | None:
        """The active reviewer behind a Slack user: the `users` map, else their Slack user id, else their
        profile's e-mail (never a reviewer pinned to another Slack user)."""
        directory = getattr(self._bound.state, "reviewers", None)
        if not isinstance(directory, ReviewerDirectory) or not user_id:
            return None
        reviewer: ReviewerRecord | None = None
        name = self._users.get(user_id)
        if name is not None:
            reviewer = await directory.get(name)
        else:  # `reviewers add --slack-user U123` (a directory holds tens of reviewers: a scan is cheap)
            reviewer = next((r for r in await directory.list() if r.active and r.slack_user == user_id), None)
        if reviewer is None and name is None:
            try:
                info = await self._api("users.info", user=user_id)
            except PermanentError as exc:
                log.warning("hitl: users.info for %s failed: %s", user_id, exc)
                return None
            user = info.get("user") or {}
            email = (user.get("profile") or {}).get("email") if isinstance(user, dict) else None
            if isinstance(email, str) and email and not user.get("deleted") and not user.get("is_bot"):
                reviewer = await directory.get_by_email(email.lower())
                if reviewer is not None and reviewer.slack_user not in (None, user_id):
                    reviewer = None  # pinned to another Slack account: the e-mail does not override that
        if reviewer is None or not reviewer.active:
            return None
        return Principal.of(reviewer)

    async def _ephemeral(self, payload: Mapping[str, Any], text: str) -> None:
        user = (payload.get("user") or {}).get("id")
        channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
        if not user or not channel:
            return
        try:
            await self._api("chat.postEphemeral", channel=channel, user=user, text=text)
        except PermanentError as exc:
            log.warning("hitl: ephemeral reply failed: %s", exc)

    async def _clicked(self, payload: dict[str, Any], clicked: Mapping[str, Any]) -> None:
        action_ref = str(clicked.get("action_id") or "")
        value = str(clicked.get("value") or "")
        if not action_ref.startswith("hitl:") or not value:
            return
        parts = action_ref.split(":")
        user_id = str((payload.get("user") or {}).get("id") or "")
        principal = await self._principal(user_id)
        if principal is None:
            await self._ephemeral(payload, _NOT_ALLOWED)
            return
        inbox = ReviewerInbox(self._bound.inbox)
        if parts[1] == "all" and len(parts) == 3:
            await self._decide_all(payload, inbox, principal, value, parts[2])
            return
        action_id = parts[-1]
        try:
            record = await inbox.get(principal, value)
        except NotFoundError:
            await self._ephemeral(payload, _NOT_ALLOWED)
            return
        action = action_by_id(record.actions, action_id)
        if action is None:
            return
        if action.fields:
            if record.status == "resolved":
                await self._ephemeral(payload, "This request is already decided.")
                return
            trigger = payload.get("trigger_id")
            if trigger:
                try:
                    await self._api(
                        "views.open", trigger_id=trigger, view=blocks.modal_view(value, record.message, action)
                    )
                except PermanentError as exc:  # an expired trigger (3 s): the reviewer clicks again
                    log.warning("hitl: views.open failed: %s", exc)
                    await self._ephemeral(payload, "Could not open the form; please click again.")
            return
        await self._decide(payload, inbox, principal, value, action, None)

    async def _decide(
        self,
        payload: Mapping[str, Any],
        inbox: ReviewerInbox,
        principal: Principal,
        request_id: str,
        action: Action,
        feedbacks: Mapping[str, Any] | None,
    ) -> None:
        try:
            result = await inbox.resolve(principal, request_id, action_id=action.id, feedbacks=feedbacks)
        except AlreadyResolvedError:
            await self._ephemeral(payload, "This request was already decided otherwise.")
        except NotFoundError:
            await self._ephemeral(payload, _NOT_ALLOWED)
        except HitlError as exc:
            await self._ephemeral(payload, f"Could not record the decision: {exc}")
        else:
            await self._after_decision(result.id)

    async def _after_decision(self, request_id: str) -> None:
        record = await self._bound.state.get(request_id)
        if record is not None and record.batch_id is not None:
            await self._item_decided(record.batch_id)

    async def _decide_all(
        self, payload: Mapping[str, Any], inbox: ReviewerInbox, principal: Principal, batch_id: str, action_id: str
    ) -> None:
        try:
            view = await inbox.get_batch(principal, batch_id)
            pending = [item.id for item in view.items if item.status == "pending"]
            decisions = [BatchDecision(request_id=item_id, action_id=action_id) for item_id in pending]
            if decisions:
                await inbox.resolve_batch(principal, batch_id, decisions)
        except NotFoundError:
            await self._ephemeral(payload, _NOT_ALLOWED)
        except HitlError as exc:
            await self._ephemeral(payload, f"Could not record the decisions: {exc}")

    async def _submitted(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        view = payload.get("view") or {}
        if not isinstance(view, dict) or view.get("callback_id") != blocks.MODAL_CALLBACK:
            return None
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            request_id, action_id = str(meta["requestId"]), str(meta["actionId"])
        except (ValueError, KeyError, TypeError):
            return None
        user_id = str((payload.get("user") or {}).get("id") or "")
        principal = await self._principal(user_id)
        if principal is None:
            return _modal_error(view, _NOT_ALLOWED)
        inbox = ReviewerInbox(self._bound.inbox)
        try:
            record = await inbox.get(principal, request_id)
        except NotFoundError:
            return _modal_error(view, _NOT_ALLOWED)
        action = action_by_id(record.actions, action_id)
        if action is None:
            return _modal_error(view, "This action no longer exists.")
        values = (view.get("state") or {}).get("values") or {}
        feedbacks = blocks.modal_values(action, values if isinstance(values, Mapping) else {})
        try:
            await inbox.resolve(principal, request_id, action_id=action_id, feedbacks=feedbacks)
        except FeedbackValidationError as exc:
            key = next((k for k in action.fields if f'"{k}"' in str(exc) or k in str(exc)), None)
            if key is not None:
                return {"response_action": "errors", "errors": {key: str(exc)}}
            return _modal_error(view, str(exc))
        except AlreadyResolvedError:
            return _modal_error(view, "This request was already decided otherwise.")
        except HitlError as exc:
            return _modal_error(view, str(exc))
        await self._after_decision(request_id)
        return None


def _modal_error(view: Mapping[str, Any], text: str) -> dict[str, Any]:
    """Replace the modal by a message (a view_submission answer is the only way to tell the user)."""
    return {
        "response_action": "update",
        "view": {
            "type": "modal",
            "title": {"type": "plain_text", "text": "Not recorded"},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": text[:2900]}}],
        },
    }


async def _read_body(receive: Any, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(chunks)
        chunk = message.get("body") or b""
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
