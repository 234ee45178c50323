"""Reviewers and their credentials: `{P}:reviewer:{id}` (the record), `{P}:reviewers:all` (SET of ids),
`{P}:reviewers:by-name:{name}` and `{P}:reviewers:by-email:{email}` (id lookups), `{P}:credential:{sha256}`
(a sign-in link, API token or session, stored under the hash of its token; links and sessions expire at
their `expiresAt`). The events carry the records they store, so this step needs no earlier state."""

from msgspec import UnsetType

from hitl_streams._time import iso_to_ms
from hitl_streams.history import events as ev
from hitl_streams.history.keys import Keys
from hitl_streams.history.projection import Ops, Step
from hitl_streams.history.reducer import Change
from hitl_streams.reviewers import CredentialRecord, ReviewerRecord, encode_record


def _credential(keys: Keys, ops: Ops, token_hash: str, credential: CredentialRecord) -> None:
    key = keys.credential(token_hash)
    ops.set(key, encode_record(credential))
    if credential.expires_at is not None:
        ops.expire_at(key, iso_to_ms(credential.expires_at))


def _reviewer(keys: Keys, ops: Ops, reviewer: ReviewerRecord) -> None:
    ops.set(keys.reviewer(reviewer.id), encode_record(reviewer))


_REVIEWER_EVENTS = (
    ev.ReviewerAdded,
    ev.ReviewerRevoked,
    ev.ReviewerCredentialIssued,
    ev.ReviewerSignedIn,
    ev.ReviewerSignedOut,
)


def project(change: Change, ops: Ops) -> None:
    event, keys = change.event, change.keys
    if not isinstance(event, _REVIEWER_EVENTS):  # one check for every other event, not five
        return
    match event:
        case ev.ReviewerAdded():
            reviewer = event.reviewer
            _reviewer(keys, ops, reviewer)
            ops.sadd(keys.reviewers_all, reviewer.id)
            ops.set(keys.reviewer_by_name(reviewer.name), reviewer.id.encode())
            if reviewer.email is not None:
                ops.set(keys.reviewer_by_email(reviewer.email), reviewer.id.encode())
        case ev.ReviewerRevoked():
            _reviewer(keys, ops, event.reviewer)
        case ev.ReviewerCredentialIssued():
            _credential(keys, ops, event.hash, event.credential)
            if not isinstance(event.reviewer, UnsetType):  # an API token: it retires the previous one
                _reviewer(keys, ops, event.reviewer)
        case ev.ReviewerSignedIn():
            _credential(keys, ops, event.link_hash, event.link)
            _credential(keys, ops, event.session_hash, event.session)
        case ev.ReviewerSignedOut():
            _credential(keys, ops, event.session_hash, event.session)


STEP = Step(id="0008_reviewers", description=__doc__ or "", project=project, events=_REVIEWER_EVENTS)
