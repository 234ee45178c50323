"""`ReviewerDirectory` on Redis, for `StreamState`: every change is one event appended and projected
atomically by the state's commit script (`migrations/0008_reviewers.py` says which keys).

Read-modify-writes are compare-and-set: the commit is guarded by the bytes each decision was made from
(the reviewer record, the sign-in link), so a link exchanged by two replicas at once signs in once, and a
credential issued while the reviewer is being revoked is refused. Verification reads Redis on every call
(two GETs): nothing is cached, so a revocation holds at once on every replica.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ..errors import HitlError
from ..history import events as ev
from ..history import reviewer_rules as rules
from ..results import Reviewer
from ..reviewers import (
    CredentialKind,
    IssuedCredential,
    ReviewerRecord,
    decode_credential,
    decode_reviewer,
    hash_token,
    token_shape_ok,
    validate_email,
    validate_reviewer_name,
)
from .replies import text
from .scripts import Guard

if TYPE_CHECKING:
    from .stream_state import StreamState

__all__ = ["StreamReviewers"]

_ATTEMPTS = 16


class _Changed(Exception):
    """A guarded key changed between our read and our commit: read again and decide again."""


def _guard(key: str, raw: bytes | str | None) -> Guard:
    return Guard("nx", key) if raw is None else Guard("eq", key, raw)


class StreamReviewers:
    """The reviewers of one `StreamState` prefix (use `state.reviewers`)."""

    def __init__(self, state: StreamState) -> None:
        self._state = state
        self._keys = state.keys

    async def _io(self) -> Any:
        await self._state.ensure_schema()
        return self._state._io

    async def _commit(self, event: ev.Event, guards: builtins.list[Guard]) -> None:
        async def changed(_: Guard) -> None:
            raise _Changed

        await self._state._commit(lambda _: event, guards=guards, on_guard_failure=changed)

    async def _retrying(self, attempt: Callable[[], Any]) -> Any:
        for _ in range(_ATTEMPTS):
            try:
                return await attempt()
            except _Changed:
                continue
        raise HitlError("reviewer records kept changing while writing; giving up")

    async def _read_by_name(self, name: str) -> tuple[bytes | str | None, bytes | str | None]:
        """(id bytes, record bytes) of the reviewer named `name`."""
        io = await self._io()
        reviewer_id = await io.get(self._keys.reviewer_by_name(validate_reviewer_name(name)))
        if reviewer_id is None:
            return None, None
        return reviewer_id, await io.get(self._keys.reviewer(text(reviewer_id)))

    # --- reviewers ------------------------------------------------------------------------------------
    async def add(
        self,
        name: str,
        *,
        namespaces: builtins.list[str],
        email: str | None = None,
        by: Reviewer | None = None,
        slack_user: str | None = None,
    ) -> ReviewerRecord:
        async def attempt() -> ReviewerRecord:
            id_raw, record_raw = await self._read_by_name(name)
            existing = None if record_raw is None else decode_reviewer(record_raw)
            event = rules.added(existing, name, namespaces, email, by, slack_user)
            guards = [_guard(self._keys.reviewer_by_name(name), id_raw)]
            if id_raw is not None:
                guards.append(_guard(self._keys.reviewer(text(id_raw)), record_raw))
            await self._commit(event, guards)
            return event.reviewer

        result: ReviewerRecord = await self._retrying(attempt)
        return result

    async def get(self, name: str) -> ReviewerRecord | None:
        _, raw = await self._read_by_name(name)
        return None if raw is None else decode_reviewer(raw)

    async def get_by_id(self, reviewer_id: str) -> ReviewerRecord | None:
        raw = await (await self._io()).get(self._keys.reviewer(reviewer_id))
        return None if raw is None else decode_reviewer(raw)

    async def get_by_email(self, email: str) -> ReviewerRecord | None:
        try:
            mail = validate_email(email)
        except ValueError:
            return None
        reviewer_id = await (await self._io()).get(self._keys.reviewer_by_email(mail))
        return None if reviewer_id is None else await self.get_by_id(text(reviewer_id))

    async def list(self) -> builtins.list[ReviewerRecord]:
        io = await self._io()
        ids = sorted(text(i) for i in await io.smembers(self._keys.reviewers_all))
        if not ids:
            return []
        values = await io.mget([self._keys.reviewer(i) for i in ids])
        return sorted(
            (decode_reviewer(v) for v in values if v is not None), key=lambda r: (r.name, r.added_at, r.active)
        )

    async def revoke(self, name: str, *, by: Reviewer | None = None) -> ReviewerRecord:
        async def attempt() -> ReviewerRecord:
            _, record_raw = await self._read_by_name(name)
            current = None if record_raw is None else decode_reviewer(record_raw)
            event = rules.revoked(current, name, by)
            if event is None:
                assert current is not None
                return current
            await self._commit(event, [_guard(self._keys.reviewer(event.reviewer.id), record_raw)])
            return event.reviewer

        result: ReviewerRecord = await self._retrying(attempt)
        return result

    # --- credentials ----------------------------------------------------------------------------------
    async def issue(self, name: str, kind: Literal["link", "token"], *, by: Reviewer | None = None) -> IssuedCredential:
        async def attempt() -> IssuedCredential:
            _, record_raw = await self._read_by_name(name)
            reviewer = None if record_raw is None else decode_reviewer(record_raw)
            fresh, event = rules.issued(reviewer, name, kind, by)
            assert reviewer is not None
            guards = [
                _guard(self._keys.reviewer(reviewer.id), record_raw),  # not revoked meanwhile
                Guard("nx", self._keys.credential(event.hash)),
            ]
            await self._commit(event, guards)
            return fresh

        result: IssuedCredential = await self._retrying(attempt)
        return result

    async def _credential(self, token: str) -> tuple[str, bytes | str | None, bytes | str | None]:
        """(hash, credential bytes, its reviewer's record bytes)."""
        io = await self._io()
        token_hash = hash_token(token)
        raw = await io.get(self._keys.credential(token_hash))
        if raw is None:
            return token_hash, None, None
        reviewer = await io.get(self._keys.reviewer(decode_credential(raw).reviewer_id))
        return token_hash, raw, reviewer

    async def verify(self, token: str, kinds: tuple[CredentialKind, ...]) -> ReviewerRecord | None:
        if not token_shape_ok(token):
            return None
        _, raw, reviewer_raw = await self._credential(token)
        if raw is None or reviewer_raw is None:
            return None
        reviewer = decode_reviewer(reviewer_raw)
        return reviewer if rules.usable(decode_credential(raw), reviewer, kinds) else None

    async def sign_in(self, link_token: str) -> tuple[ReviewerRecord, IssuedCredential] | None:
        if not token_shape_ok(link_token, "link"):
            return None

        async def attempt() -> tuple[ReviewerRecord, IssuedCredential] | None:
            link_hash, raw, reviewer_raw = await self._credential(link_token)
            if raw is None or reviewer_raw is None:
                return None
            link, reviewer = decode_credential(raw), decode_reviewer(reviewer_raw)
            if not rules.usable(link, reviewer, ("link",)):
                return None
            session, event = rules.signed_in(link_hash, link, reviewer)
            guards = [
                Guard("eq", self._keys.credential(link_hash), raw),  # the link works once
                Guard("eq", self._keys.reviewer(reviewer.id), reviewer_raw),
                Guard("nx", self._keys.credential(event.session_hash)),
            ]
            await self._commit(event, guards)
            return reviewer, session

        result: tuple[ReviewerRecord, IssuedCredential] | None = await self._retrying(attempt)
        return result

    async def sign_out(self, session_token: str) -> None:
        if not token_shape_ok(session_token, "session"):
            return

        async def attempt() -> None:
            session_hash, raw, reviewer_raw = await self._credential(session_token)
            if raw is None:
                return
            session = decode_credential(raw)
            if session.ended_at is not None or session.kind != "session":
                return
            reviewer = None if reviewer_raw is None else decode_reviewer(reviewer_raw)
            event = rules.signed_out(session_hash, session, reviewer)
            await self._commit(event, [Guard("eq", self._keys.credential(session_hash), raw)])

        await self._retrying(attempt)
