"""`ReviewerDirectory` in process memory, for `InMemoryState` (tests, demos, one process).

Every change is appended to the state's history, as StreamState does; the rules (what an operation
records, when a credential is good) are `reviewer_rules`, shared with the Redis directory.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Literal

import msgspec

from ..results import Reviewer
from ..reviewers import (
    CredentialKind,
    CredentialRecord,
    IssuedCredential,
    ReviewerRecord,
    hash_token,
    token_shape_ok,
    validate_email,
)
from . import events as ev
from . import reviewer_rules as rules

__all__ = ["MemoryReviewers"]


def _copy(record: ReviewerRecord) -> ReviewerRecord:
    return msgspec.json.decode(msgspec.json.encode(record), type=ReviewerRecord)


class MemoryReviewers:
    """Reviewers held in dictionaries; `append` adds an event to the owning state's history."""

    def __init__(self, append: Callable[[ev.Event], None]) -> None:
        self._append = append
        self._by_id: dict[str, ReviewerRecord] = {}
        self._by_name: dict[str, str] = {}
        self._by_email: dict[str, str] = {}
        self._credentials: dict[str, CredentialRecord] = {}

    def _store(self, reviewer: ReviewerRecord) -> None:
        self._by_id[reviewer.id] = reviewer

    async def add(
        self,
        name: str,
        *,
        namespaces: builtins.list[str],
        email: str | None = None,
        by: Reviewer | None = None,
        slack_user: str | None = None,
    ) -> ReviewerRecord:
        event = rules.added(await self.get(name), name, namespaces, email, by, slack_user)
        reviewer = event.reviewer
        self._store(reviewer)
        self._by_name[reviewer.name] = reviewer.id
        if reviewer.email is not None:
            self._by_email[reviewer.email] = reviewer.id
        self._append(event)
        return reviewer

    async def get(self, name: str) -> ReviewerRecord | None:
        reviewer_id = self._by_name.get(name)
        return None if reviewer_id is None else await self.get_by_id(reviewer_id)

    async def get_by_id(self, reviewer_id: str) -> ReviewerRecord | None:
        reviewer = self._by_id.get(reviewer_id)
        return None if reviewer is None else _copy(reviewer)

    async def get_by_email(self, email: str) -> ReviewerRecord | None:
        try:
            reviewer_id = self._by_email.get(validate_email(email))
        except ValueError:
            return None
        return None if reviewer_id is None else await self.get_by_id(reviewer_id)

    async def list(self) -> builtins.list[ReviewerRecord]:
        return sorted((_copy(r) for r in self._by_id.values()), key=lambda r: (r.name, r.added_at, r.active))

    async def revoke(self, name: str, *, by: Reviewer | None = None) -> ReviewerRecord:
        current = await self.get(name)
        event = rules.revoked(current, name, by)
        if event is None:
            assert current is not None
            return current
        self._store(event.reviewer)
        self._append(event)
        return event.reviewer

    async def issue(self, name: str, kind: Literal["link", "token"], *, by: Reviewer | None = None) -> IssuedCredential:
        fresh, event = rules.issued(await self.get(name), name, kind, by)
        self._credentials[event.hash] = event.credential
        if isinstance(event.reviewer, ReviewerRecord):
            self._store(event.reviewer)
        self._append(event)
        return fresh

    async def verify(self, token: str, kinds: tuple[CredentialKind, ...]) -> ReviewerRecord | None:
        if not token_shape_ok(token):
            return None
        credential = self._credentials.get(hash_token(token))
        reviewer = None if credential is None else self._by_id.get(credential.reviewer_id)
        return _copy(reviewer) if reviewer is not None and rules.usable(credential, reviewer, kinds) else None

    async def sign_in(self, link_token: str) -> tuple[ReviewerRecord, IssuedCredential] | None:
        if not token_shape_ok(link_token, "link"):
            return None
        link_hash = hash_token(link_token)
        link = self._credentials.get(link_hash)
        reviewer = None if link is None else self._by_id.get(link.reviewer_id)
        if link is None or reviewer is None or not rules.usable(link, reviewer, ("link",)):
            return None
        session, event = rules.signed_in(link_hash, link, reviewer)
        self._credentials[link_hash] = event.link
        self._credentials[event.session_hash] = event.session
        self._append(event)
        return _copy(reviewer), session

    async def sign_out(self, session_token: str) -> None:
        if not token_shape_ok(session_token, "session"):
            return
        session_hash = hash_token(session_token)
        session = self._credentials.get(session_hash)
        if session is None or session.ended_at is not None:
            return
        event = rules.signed_out(session_hash, session, self._by_id.get(session.reviewer_id))
        self._credentials[session_hash] = event.session
        self._append(event)
