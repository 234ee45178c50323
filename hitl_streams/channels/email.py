"""The e-mail channel: a request as a plain-text + HTML message with one link per action to the web
inbox's page for it; reminders, escalations and the outcome as replies in the same thread.

`EmailChannel(smtp_url="smtp://user:pass@host:587?starttls=1", mail_from="hitl@example.com",
public_url="https://hitl.example.com")`, passed to `Hitl(adapters=[...])`. Recipients: the destination
(`channel="email:ops@example.com"`, several separated by commas), else every active reviewer with an
e-mail who may decide in the request's namespace.

A link never decides: it opens `{public_url}/inbox/requests/{id}?action=...` where the reviewer signs in
if needed and confirms with the form, so a mail scanner following links decides nothing. Links carry
`sig`, an HMAC of the request and action under `link_secret` (`verify_link` checks it), so a link in an
e-mail can be told from a hand-made one.

Threading needs no memory: the request's `Message-ID` is derived from its id and the server's domain
(`<hitl.{id}@{domain}>`), and it is the request's external id; every replica, before or after a restart,
replies with `In-Reply-To`/`References` set to it. Transient SMTP errors are retried with backoff; a
delivery that fails for good leaves the request to the web inbox and records a `channel.failed` event.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import hmac
import json
import logging
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..actions import effective_label
from ..errors import ValidationError
from ..results import HumanResult
from ..reviewers import ReviewerDirectory, validate_email
from ..server.audit import Auditable
from ..server.channels import BaseAdapter, HumanRequest, Notification
from ._audit import record_channel_failure
from ._outcome import outcome_line
from ._retry import PermanentError, RetryPolicy, TransientError, with_retries
from .email_smtp import SmtpSettings

if TYPE_CHECKING:
    import jinja2

    from ..records import HumanRequestRecord
    from ..server.hitl import Hitl

__all__ = ["EmailChannel"]

log = logging.getLogger("hitl_streams.channels.email")


def _templates() -> jinja2.Environment:
    try:
        import jinja2
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("The e-mail channel needs jinja2 and aiosmtplib: pip install 'hitl-streams[email]'") from None
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hitl_streams.channels", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        keep_trailing_newline=True,
    )


def _readable(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _subject(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 90 else line[:89] + "…"


def _classify(exc: Exception) -> Exception:
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
        return TransientError(f"SMTP {code}") if 400 <= code < 500 else PermanentError(f"SMTP {code}: {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return PermanentError("every recipient was refused")
    if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return PermanentError(f"{type(exc).__name__}: {exc}")


class EmailChannel(BaseAdapter):
    """E-mail as a channel (see the module docs)."""

    def __init__(
        self,
        *,
        smtp_url: str,
        mail_from: str,
        public_url: str,
        link_secret: str | None = None,
        id: str = "email",
        default_channel: str | None = None,
        domain: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.id = id
        self.default_channel = default_channel
        self.smtp = SmtpSettings.from_url(smtp_url)
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")
        if not self.public_url.startswith(("http://", "https://")):
            raise ValidationError("public_url must be the server's absolute base URL (https://...)")
        # A key of its own, derived from the secret: a link's signature reveals nothing usable elsewhere.
        self._link_key = (
            hmac.new(link_secret.encode(), b"hitl-streams e-mail links", hashlib.sha256).digest()
            if link_secret
            else b""
        )
        host = urllib.parse.urlsplit(self.public_url).hostname or ""
        self.domain = domain or host or mail_from.rpartition("@")[2] or "hitl.invalid"
        self._retry = retry or RetryPolicy()
        self._env = _templates()
        self._hitl: Hitl | None = None

    def bind(self, hitl: Hitl) -> None:
        """Called by `Hitl`: where requests and reviewers are."""
        self._hitl = hitl

    # --- ids and links --------------------------------------------------------------------------------
    def message_id(self, request_id: str) -> str:
        """The request's `Message-ID`: the same on every replica, forever."""
        return f"<hitl.{request_id}@{self.domain}>"

    def _request_of(self, message_id: str) -> str | None:
        prefix, suffix = "<hitl.", f"@{self.domain}>"
        if message_id.startswith(prefix) and message_id.endswith(suffix):
            return message_id[len(prefix) : -len(suffix)] or None
        return None

    def _sig(self, request_id: str, action_id: str) -> str:
        mac = hmac.new(self._link_key, f"{request_id}\n{action_id}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def link(self, request_id: str, action_id: str | None = None) -> str:
        """The web inbox's page for a request, for one action (signed) or none."""
        path = f"{self.public_url}/inbox/requests/{urllib.parse.quote(request_id, safe='')}"
        if action_id is None:
            return path
        query = {"action": action_id}
        if self._link_key:
            query["sig"] = self._sig(request_id, action_id)
        return f"{path}?{urllib.parse.urlencode(query)}"

    def verify_link(self, request_id: str, action_id: str, sig: str) -> bool:
        """Whether a link's `sig` was made by this channel (constant-time)."""
        return bool(self._link_key) and hmac.compare_digest(self._sig(request_id, action_id), sig)

    # --- recipients -----------------------------------------------------------------------------------
    async def _record(self, request_id: str) -> HumanRequestRecord | None:
        return None if self._hitl is None else await self._hitl.state.get(request_id)

    async def _recipients(self, destination: str | None, namespace: str | None) -> list[str]:
        where = destination or self.default_channel
        if where:
            return [validate_email(part.strip()) for part in where.split(",") if part.strip()]
        directory = getattr(self._hitl.state, "reviewers", None) if self._hitl is not None else None
        if not isinstance(directory, ReviewerDirectory) or namespace is None:
            return []
        return sorted({r.email for r in await directory.list() if r.email and r.allows(namespace)})

    def _destination_of(self, record: HumanRequestRecord | None) -> str | None:
        """The destination the request was routed to (`email:ops@example.com` → `ops@example.com`)."""
        if record is None:
            return None
        prefix = f"{self.id}:"
        return record.channel[len(prefix) :] if record.channel.startswith(prefix) else None

    # --- sending --------------------------------------------------------------------------------------
    def _compose(
        self, recipients: Sequence[str], subject: str, template: str, message_id: str, thread: str | None, **data: Any
    ) -> email.message.EmailMessage:
        mail = email.message.EmailMessage()
        mail["From"] = self.mail_from
        mail["To"] = ", ".join(recipients)
        mail["Subject"] = subject
        mail["Message-ID"] = message_id
        mail["Date"] = email.utils.formatdate(localtime=False)
        if thread is not None:
            mail["In-Reply-To"] = thread
            mail["References"] = thread
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(self._env.get_template(f"{template}.txt").render(**data))
        mail.add_alternative(self._env.get_template(f"{template}.html").render(**data), subtype="html")
        return mail

    async def _smtp_send(self, mail: email.message.EmailMessage) -> None:
        try:
            import aiosmtplib
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError("The e-mail channel needs aiosmtplib: pip install 'hitl-streams[email]'") from None
        s = self.smtp

        async def call() -> None:
            await aiosmtplib.send(
                mail,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.use_tls,
                start_tls=s.start_tls,
                timeout=s.timeout,
            )

        await with_retries("smtp send", call, _classify, self._retry)

    async def _audit_failure(self, request_id: str, operation: str, error: str) -> None:
        state = self._hitl.state if self._hitl is not None else None
        if isinstance(state, Auditable):
            record = await state.get(request_id)
            await record_channel_failure(
                state,
                channel=self.id,
                request_id=request_id,
                batch_id=getattr(record, "batch_id", None),
                operation=operation,
                error=error,
            )

    async def send(self, request: HumanRequest) -> str:
        record = await self._record(request.id)
        destination = request.destination
        if destination is not None and destination.startswith("<"):  # threaded under another request's mail
            destination = self._destination_of(record)
        recipients = await self._recipients(destination, record.namespace if record else None)
        message_id = self.message_id(request.id)
        if not recipients:
            await self._audit_failure(request.id, "deliver", "no recipients (no destination, no reviewer e-mails)")
            return message_id
        links = [(effective_label(a), self.link(request.id, a.id)) for a in request.actions]
        context = [(str(k), _readable(v)) for k, v in (request.context or {}).items()]
        mail = self._compose(
            recipients,
            _subject(request.message),
            "request",
            message_id,
            None,
            message=request.message,
            context=context,
            links=links,
            request_id=request.id,
            namespace=record.namespace if record else None,
        )
        try:
            await self._smtp_send(mail)
        except PermanentError as exc:
            log.warning("hitl: e-mail delivery of %s failed for good; left to the inbox: %s", request.id, exc)
            await self._audit_failure(request.id, "deliver", str(exc))
        # The Message-ID either way: a reminder replies to it, and the inbox has the request regardless.
        return message_id

    async def _reply(self, request_id: str, text: str, subject_prefix: str) -> str | None:
        record = await self._record(request_id)
        if record is None:
            return None
        recipients = await self._recipients(self._destination_of(record), record.namespace)
        if not recipients:
            return None
        note_id = f"<hitl.{request_id}.{uuid.uuid4().hex[:16]}@{self.domain}>"
        mail = self._compose(
            recipients,
            f"{subject_prefix}{_subject(record.message)}",
            "note",
            note_id,
            self.message_id(request_id),
            message=text,
            link=self.link(request_id),
        )
        await self._smtp_send(mail)
        return note_id

    async def notify(self, notification: Notification) -> str | None:
        thread = notification.destination or ""
        request_id = self._request_of(thread)
        if request_id is not None:  # a reminder or a note after the request: a reply in its thread
            return await self._reply(request_id, notification.message, "Re: ")
        recipients = await self._recipients(notification.destination, None)
        if not recipients:
            return None
        note_id = f"<hitl.note.{uuid.uuid4().hex}@{self.domain}>"
        mail = self._compose(
            recipients, _subject(notification.message), "note", note_id, None, message=notification.message, link=None
        )
        await self._smtp_send(mail)
        return note_id

    async def update(self, external_id: str, result: HumanResult) -> None:
        """The outcome as a last reply in the thread ("Approved by ana")."""
        request_id = self._request_of(external_id)
        if request_id is None:
            return
        record = await self._record(request_id)
        await self._reply(request_id, outcome_line(result, record.actions if record else ()), "Re: ")
