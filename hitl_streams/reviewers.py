"""Reviewers: principals scoped to namespaces, and the credentials they sign in with.

A reviewer is a record in history: `reviewer.added` grants namespaces, `reviewer.revoked` takes them
away, `reviewer.credential_issued` / `reviewer.signed_in` / `reviewer.signed_out` record every credential
(see `events.py`, projected by `migrations/0008_reviewers.py`). A state that keeps reviewers offers a
`ReviewerDirectory` as its `reviewers` attribute (`InMemoryState`, `StreamState`).

Credentials are random tokens (`secrets.token_urlsafe(32)`: 256 bits) stored only as their SHA-256. A
slow password hash (scrypt, argon2) exists to make guessing a low-entropy password expensive; nobody can
guess a 256-bit random token, so one SHA-256 is as strong and keeps verification (once per HTTP request)
cheap. No salt or server-side pepper is needed for the same reason, and without one the CLI can issue
credentials that every replica verifies with nothing but Redis.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import Literal, Protocol, runtime_checkable

import msgspec

from .errors import HitlError, NotFoundError, ValidationError
from .namespaces import validate_namespace
from .results import Reviewer

__all__ = [
    "ALL_NAMESPACES",
    "LINK_TTL_SECONDS",
    "SESSION_TTL_SECONDS",
    "SIGN_IN_PATH",
    "CredentialKind",
    "CredentialRecord",
    "DuplicateReviewerError",
    "IssuedCredential",
    "ReviewerDirectory",
    "ReviewerRecord",
    "RevokedReviewerError",
    "UnknownReviewerError",
    "decode_credential",
    "decode_reviewer",
    "encode_record",
    "hash_token",
    "mint_token",
    "parse_namespaces",
    "sign_in_link",
    "validate_email",
    "validate_reviewer_name",
    "validate_slack_user",
]

ALL_NAMESPACES = "*"
"""A grant of every namespace (for leads and on-call); not a valid namespace name itself."""
LINK_TTL_SECONDS = 15 * 60
"""A one-time sign-in link is good for 15 minutes, once."""
SESSION_TTL_SECONDS = 12 * 3600
"""A browser session lasts 12 hours."""

CredentialKind = Literal["link", "token", "session"]
_PREFIXES: dict[str, str] = {"link": "hitl_sl_", "token": "hitl_rt_", "session": "hitl_ss_"}
"""Token prefixes: a leaked token says what it is (and secret scanners can match it)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,128}@[^@\s\x00-\x1f\x7f]{1,253}")
_TOKEN = re.compile(r"hitl_(sl|rt|ss)_[A-Za-z0-9_\-]{43}")


class UnknownReviewerError(NotFoundError):
    def __init__(self, name: str) -> None:
        super().__init__(f'Unknown reviewer "{name}"')
        self.name = name


class DuplicateReviewerError(HitlError):
    def __init__(self, name: str) -> None:
        super().__init__(f'Reviewer "{name}" already exists (revoke it first to add it again)')
        self.name = name


class RevokedReviewerError(HitlError):
    def __init__(self, name: str) -> None:
        super().__init__(f'Reviewer "{name}" is revoked')
        self.name = name


class ReviewerRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """A reviewer as stored: `namespaces` may hold `"*"` (every namespace)."""

    id: str
    name: str
    email: str | None = None
    namespaces: list[str]
    added_at: str
    revoked_at: str | None = None
    current_token: str | None = None
    """The id of the reviewer's API token: one per reviewer, so issuing a new one retires the old."""
    slack_user: str | None = None
    """Their Slack user id (`U0123ABCD`): the Slack channel lets that user decide as this reviewer."""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, namespace: str) -> bool:
        return self.active and (ALL_NAMESPACES in self.namespaces or namespace in self.namespaces)


class CredentialRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """A credential as stored, under the SHA-256 of its token. `id` is the first 16 hex digits of that
    hash: enough to tell credentials apart in an audit trail, useless to sign in with."""

    id: str
    reviewer_id: str
    kind: CredentialKind
    created_at: str
    expires_at: str | None = None
    used_at: str | None = None
    """A sign-in link's exchange for a session (it works once)."""
    ended_at: str | None = None
    """A session's sign-out."""


class IssuedCredential(msgspec.Struct, frozen=True):
    """A fresh credential: the token (shown once, never stored) and what is stored about it."""

    token: str
    credential: CredentialRecord


_encoder = msgspec.json.Encoder()
_reviewer_decoder = msgspec.json.Decoder(ReviewerRecord)
_credential_decoder = msgspec.json.Decoder(CredentialRecord)


def encode_record(record: ReviewerRecord | CredentialRecord) -> bytes:
    """Canonical JSON (a replay writes the same bytes)."""
    return _encoder.encode(record)


def decode_reviewer(raw: bytes | str) -> ReviewerRecord:
    return _reviewer_decoder.decode(raw)


def decode_credential(raw: bytes | str) -> CredentialRecord:
    return _credential_decoder.decode(raw)


def mint_token(kind: CredentialKind) -> tuple[str, str]:
    """A new random token of `kind` and its hash."""
    token = _PREFIXES[kind] + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex (see the module docs for why not scrypt/argon2)."""
    return hashlib.sha256(token.encode()).hexdigest()


SIGN_IN_PATH = "inbox/login"
"""Where a sign-in link leads, relative to the server's mount (the web inbox exchanges it for a session)."""


def sign_in_link(token: str, public_url: str | None = None) -> str:
    """The link a reviewer opens to sign in: absolute under `public_url` (the server's public base URL,
    mount path included), else the path from the server's root."""
    path = f"{SIGN_IN_PATH}?token={token}"  # token_urlsafe: nothing to escape
    return f"{public_url.rstrip('/')}/{path}" if public_url else f"/{path}"


def token_shape_ok(token: object, kind: CredentialKind | None = None) -> bool:
    """Cheap syntax check before touching storage: right prefix, right length."""
    if not isinstance(token, str) or len(token) > 64:
        return False
    match = _TOKEN.fullmatch(token)
    return match is not None and (kind is None or token.startswith(_PREFIXES[kind]))


def validate_reviewer_name(name: object) -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValidationError(
            f"Invalid reviewer name {name!r}: 1-64 letters, digits, _ . @ -, starting with a letter or digit"
        )
    return name


_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,31}")


def validate_slack_user(user: object) -> str:
    """A Slack user id: `U` or `W` (Enterprise Grid) and upper-case letters and digits."""
    if not isinstance(user, str) or _SLACK_USER.fullmatch(user) is None:
        raise ValidationError(f"Invalid Slack user id {user!r} (like U0123ABCD)")
    return user


def validate_email(email: object) -> str:
    if not isinstance(email, str) or _EMAIL.fullmatch(email) is None:
        raise ValidationError(f"Invalid email {email!r}")
    return email.lower()


def parse_namespaces(raw: str | Iterable[str]) -> list[str]:
    """`"a,b"` or `["a", "b"]` → validated, de-duplicated, in order; `"*"` grants every namespace."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item != ALL_NAMESPACES:
            validate_namespace(item)
        if item not in out:
            out.append(item)
    if not out:
        raise ValidationError('A reviewer needs at least one namespace (or "*" for all)')
    return out


@runtime_checkable
class ReviewerDirectory(Protocol):
    """Reviewers and their credentials. Every change is one event in history; every check reads the
    store (no cache), so a revocation is seen at once by every process sharing it."""

    async def add(
        self,
        name: str,
        *,
        namespaces: builtins.list[str],
        email: str | None = None,
        by: Reviewer | None = None,
        slack_user: str | None = None,
    ) -> ReviewerRecord: ...

    async def get(self, name: str) -> ReviewerRecord | None: ...

    async def get_by_id(self, reviewer_id: str) -> ReviewerRecord | None: ...

    async def get_by_email(self, email: str) -> ReviewerRecord | None: ...

    async def list(self) -> builtins.list[ReviewerRecord]: ...

    async def revoke(self, name: str, *, by: Reviewer | None = None) -> ReviewerRecord: ...

    async def issue(
        self, name: str, kind: Literal["link", "token"], *, by: Reviewer | None = None
    ) -> IssuedCredential: ...

    async def verify(self, token: str, kinds: tuple[CredentialKind, ...]) -> ReviewerRecord | None: ...

    async def sign_in(self, link_token: str) -> tuple[ReviewerRecord, IssuedCredential] | None: ...

    async def sign_out(self, session_token: str) -> None: ...
