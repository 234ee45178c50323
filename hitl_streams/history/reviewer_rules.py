"""What each reviewer operation records, and when a credential is good: written once, used by every
state's `ReviewerDirectory` (in memory and on Redis), so they cannot disagree."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import msgspec
from msgspec import UNSET

from .._time import iso_to_ms, ms_to_iso, now_ms
from ..results import Reviewer
from ..reviewers import (
    LINK_TTL_SECONDS,
    SESSION_TTL_SECONDS,
    CredentialKind,
    CredentialRecord,
    DuplicateReviewerError,
    IssuedCredential,
    ReviewerRecord,
    RevokedReviewerError,
    UnknownReviewerError,
    mint_token,
    parse_namespaces,
    validate_email,
    validate_reviewer_name,
    validate_slack_user,
)
from . import events as ev

__all__ = ["added", "issued", "revoked", "signed_in", "signed_out", "usable"]


def _actor(by: Reviewer | None) -> Reviewer | msgspec.UnsetType:
    return UNSET if by is None else by


def added(
    existing: ReviewerRecord | None,
    name: str,
    namespaces: Iterable[str],
    email: str | None,
    by: Reviewer | None,
    slack_user: str | None = None,
) -> ev.ReviewerAdded:
    """A new reviewer. A name held by an active reviewer is refused; a revoked name may be added again
    (a new reviewer id: the old one's history stays its own)."""
    validate_reviewer_name(name)
    granted = parse_namespaces(namespaces)
    mail = None if email is None else validate_email(email)
    if existing is not None and existing.active:
        raise DuplicateReviewerError(name)
    at = ms_to_iso(now_ms())
    slack = None if slack_user is None else validate_slack_user(slack_user)
    record = ReviewerRecord(
        id="rv_" + secrets.token_hex(8), name=name, email=mail, namespaces=granted, added_at=at, slack_user=slack
    )
    return ev.ReviewerAdded(at=at, actor=_actor(by), reviewer=record)


def revoked(existing: ReviewerRecord | None, name: str, by: Reviewer | None) -> ev.ReviewerRevoked | None:
    """The revocation, or `None` if the reviewer is revoked already (revoking is idempotent)."""
    if existing is None:
        raise UnknownReviewerError(name)
    if not existing.active:
        return None
    at = ms_to_iso(now_ms())
    return ev.ReviewerRevoked(at=at, actor=_actor(by), reviewer=msgspec.structs.replace(existing, revoked_at=at))


def _credential(reviewer: ReviewerRecord, kind: CredentialKind, token_hash: str, ttl: int | None) -> CredentialRecord:
    now = now_ms()
    return CredentialRecord(
        id=token_hash[:16],
        reviewer_id=reviewer.id,
        kind=kind,
        created_at=ms_to_iso(now),
        expires_at=None if ttl is None else ms_to_iso(now + ttl * 1000),
    )


def issued(
    reviewer: ReviewerRecord | None, name: str, kind: CredentialKind, by: Reviewer | None
) -> tuple[IssuedCredential, ev.ReviewerCredentialIssued]:
    """A sign-in link (15 minutes, once) or the reviewer's API token (until the reviewer is revoked or a
    new token is issued: one token per reviewer, so a leaked one is retired by issuing the next)."""
    if reviewer is None:
        raise UnknownReviewerError(name)
    if not reviewer.active:
        raise RevokedReviewerError(name)
    token, token_hash = mint_token(kind)
    credential = _credential(reviewer, kind, token_hash, LINK_TTL_SECONDS if kind == "link" else None)
    updated: ReviewerRecord | msgspec.UnsetType = UNSET
    if kind == "token":
        updated = msgspec.structs.replace(reviewer, current_token=credential.id)
    event = ev.ReviewerCredentialIssued(
        at=credential.created_at, actor=_actor(by), hash=token_hash, credential=credential, reviewer=updated
    )
    return IssuedCredential(token, credential), event


def usable(credential: CredentialRecord | None, reviewer: ReviewerRecord | None, kinds: tuple[str, ...]) -> bool:
    """A credential signs its reviewer in iff it is of an accepted kind, not expired, used or ended, and
    belongs to an active reviewer."""
    if credential is None or reviewer is None or credential.kind not in kinds:
        return False
    if credential.reviewer_id != reviewer.id or not reviewer.active:
        return False
    if credential.used_at is not None or credential.ended_at is not None:
        return False
    if credential.kind == "token" and reviewer.current_token not in (None, credential.id):
        return False  # retired by a newer token
    return credential.expires_at is None or iso_to_ms(credential.expires_at) > now_ms()


def _as_reviewer(reviewer: ReviewerRecord) -> Reviewer:
    return Reviewer(id=reviewer.id, name=reviewer.name, email=reviewer.email)


def signed_in(
    link_hash: str, link: CredentialRecord, reviewer: ReviewerRecord
) -> tuple[IssuedCredential, ev.ReviewerSignedIn]:
    """The exchange of a usable link for a session (the caller checked `usable` on the stored bytes and
    commits only if they are unchanged: a link works once)."""
    token, session_hash = mint_token("session")
    session = _credential(reviewer, "session", session_hash, SESSION_TTL_SECONDS)
    event = ev.ReviewerSignedIn(
        at=session.created_at,
        actor=_as_reviewer(reviewer),
        link_hash=link_hash,
        link=msgspec.structs.replace(link, used_at=session.created_at),
        session_hash=session_hash,
        session=session,
    )
    return IssuedCredential(token, session), event


def signed_out(session_hash: str, session: CredentialRecord, reviewer: ReviewerRecord | None) -> ev.ReviewerSignedOut:
    at = ms_to_iso(now_ms())
    return ev.ReviewerSignedOut(
        at=at,
        actor=UNSET if reviewer is None else _as_reviewer(reviewer),
        session_hash=session_hash,
        session=msgspec.structs.replace(session, ended_at=at),
    )
