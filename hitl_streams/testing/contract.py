"""The State contract as a reusable pytest suite: every State implementation runs the same cases.

Subclass `StateContract` in a test module whose class name starts with `Test`, and supply a fresh,
empty state, either by overriding `create_state` or by defining an async `state` fixture::

    import pytest_asyncio
    from hitl_streams.testing.contract import StateContract

    class TestMyState(StateContract):
        @pytest_asyncio.fixture
        async def state(self, redis, table_name):
            yield MyState(redis, table_name=table_name)

Cases 01-36 are the TypeScript SDK's contract (`describeStateContract`, REF §3), with its test names.
The cases after them cover what the TypeScript contract leaves out: token uniqueness, concurrent
resolves, cursors and limits, JSON fidelity, copies and the audit trail. Cases use only the public
State API, so they hold for any backend; they never assume two records get different timestamps.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import msgspec
import pytest
import pytest_asyncio

from ..actions import Action, ConfirmField, SelectField, TextAreaField, TextField, actions, field
from ..errors import (
    AlreadyResolvedError,
    DuplicateTokenError,
    UnknownBatchError,
    UnknownNotifyDeliveryError,
    UnknownRequestError,
    ValidationError,
)
from ..pagination import DEFAULT_INBOX_LIMIT, MAX_INBOX_LIMIT, encode_cursor
from ..records import (
    HumanRequestRecord,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    RequestStatus,
    TimelineEntry,
)
from ..results import Resolved, Reviewer, TimedOut
from ..state import State

__all__ = ["JS_ISO_TIMESTAMP", "StateContract", "new_request", "resolved_result"]

CHANNEL = "lead-approvals"
SHARED_TOKEN = "shared-token"  # noqa: S105 - a resume token, not a password
JS_ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def new_request(
    request_id: str,
    *,
    namespace: str = "global",
    batch_id: str | None = None,
    batch_index: int | None = None,
    context: dict[str, Any] | None = None,
    token: str | None = None,
) -> NewHumanRequest:
    """The contract's helper record: channel `lead-approvals`, token `tok_<id>`, an approve action with one
    text field."""
    return NewHumanRequest(
        id=request_id,
        token=token if token is not None else f"tok_{request_id}",
        channel=CHANNEL,
        namespace=namespace,
        message=f"Approve {request_id}?",
        actions=actions().approve(fields={"note": field.text(label="Note")}).build(),
        context=context,
        batch_id=batch_id,
        batch_index=batch_index,
    )


def resolved_result(request_id: str, action_id: str = "approve", **feedbacks: Any) -> Resolved:
    """A resolution of `request_id` as the server would store it."""
    return Resolved(
        id=request_id,
        action_id=action_id,
        external_ref=f"ext_{request_id}",
        feedbacks=dict(feedbacks),
        by=Reviewer(id="u1", name="Ada"),
    )


def _ids(records: Sequence[HumanRequestRecord]) -> list[str]:
    return [r.id for r in records]


def _message(expected: str) -> str:
    """A `pytest.raises(match=...)` pattern for a message containing `expected` literally."""
    return re.escape(expected)


class StateContract:
    """Base class of the contract suite. Subclasses supply a fresh, empty `state` (see module docs)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    async def create_state(self) -> State:
        """Return a fresh, empty state. Override this, or override the `state` fixture itself."""
        raise NotImplementedError(
            f"{type(self).__name__} must override create_state() or define an async `state` fixture"
        )

    async def close_state(self, state: State) -> None:
        """Release what `create_state` acquired (nothing by default)."""

    @pytest_asyncio.fixture
    async def state(self) -> AsyncIterator[State]:
        state = await self.create_state()
        try:
            yield state
        finally:
            await self.close_state(state)

    # --- helpers ------------------------------------------------------------------------------------
    @staticmethod
    async def walk(
        state: State, *, limit: int, status: RequestStatus | None = None, namespace: str | None = None
    ) -> list[list[HumanRequestRecord]]:
        """Every page of `list`, following cursors; fails if a walk does not end."""
        pages: list[list[HumanRequestRecord]] = []
        cursor: str | None = None
        for _ in range(10_000):
            page = await state.list(status=status, namespace=namespace, limit=limit, cursor=cursor)
            pages.append(page.items)
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor
        pytest.fail("list() kept returning a next_cursor")

    @staticmethod
    def assert_newest_first(records: Sequence[HumanRequestRecord]) -> None:
        keys = [(r.created_at, r.id) for r in records]
        assert keys == sorted(keys, reverse=True), keys

    # === REF §3: the TypeScript contract, case by case ================================================
    async def test_01_creates_and_gets_a_pending_record(self, state: State) -> None:
        await state.create(new_request("a1"))
        got = await state.get("a1")
        assert got is not None
        assert (got.id, got.token, got.channel) == ("a1", "tok_a1", CHANNEL)
        assert got.status == "pending"
        assert got.created_at

    async def test_02_returns_null_for_an_unknown_id(self, state: State) -> None:
        assert await state.get("missing") is None

    async def test_03_attaches_an_external_id(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.set_external_id("a1", "ext-1")
        got = await state.get("a1")
        assert got is not None
        assert got.external_id == "ext-1"
        found = await state.find_by_external_id("ext-1")
        assert found is not None
        assert found.id == "a1"

    async def test_04_attaches_per_channel_external_ids_for_escalation_deliveries(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.set_external_id("a1", "ext-primary")
        await state.set_external_id("a1", "ext-oncall", "oncall")
        got = await state.get("a1")
        assert got is not None
        assert got.external_id == "ext-primary"
        assert got.external_ids == {CHANNEL: "ext-primary", "oncall": "ext-oncall"}
        found = await state.find_by_external_id("ext-oncall")
        assert found is not None
        assert found.id == "a1"

    async def test_05_resolves_a_record_with_a_result(self, state: State) -> None:
        await state.create(new_request("a1"))
        result = resolved_result("a1", note="ok")
        await state.resolve("a1", result)
        got = await state.get("a1")
        assert got is not None
        assert got.status == "resolved"
        assert got.result == result
        assert got.resolved_at

    async def test_06_throws_when_resolving_twice(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.resolve("a1", resolved_result("a1"))
        with pytest.raises(AlreadyResolvedError, match=_message('Human request "a1" is already resolved')):
            await state.resolve("a1", resolved_result("a1", "deny"))
        with pytest.raises(AlreadyResolvedError, match=r"(?i)already resolved"):
            await state.resolve("a1", TimedOut(id="a1", external_ref="ext_a1"))

    async def test_07_lists_pending_records_only(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.create(new_request("a2"))
        await state.resolve("a1", resolved_result("a1"))
        pending = await state.list(status="pending")
        assert _ids(pending.items) == ["a2"]
        everything = await state.list()
        assert sorted(_ids(everything.items)) == ["a1", "a2"]

    async def test_08_lists_resolved_records_only(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.create(new_request("a2"))
        await state.resolve("a1", resolved_result("a1"))
        resolved = await state.list(status="resolved")
        assert _ids(resolved.items) == ["a1"]

    async def test_09_pages_results_newest_first_via_limit_and_cursor(self, state: State) -> None:
        ids = [f"a{i}" for i in range(5)]
        for request_id in ids:
            await state.create(new_request(request_id))
        pages = await self.walk(state, limit=2)
        assert all(len(page) <= 2 for page in pages)
        walked = [r for page in pages for r in page]
        assert sorted(_ids(walked)) == sorted(ids)
        assert len(walked) == len(ids)
        self.assert_newest_first(walked)
        # The walk stopped because the last page had no cursor; it is not empty when 5 % 2 != 0.
        assert [len(page) for page in pages] == [2, 2, 1]

    async def test_10_paginates_within_a_status_filter(self, state: State) -> None:
        for i in range(5):
            await state.create(new_request(f"a{i}"))
        await state.resolve("a1", resolved_result("a1"))
        await state.resolve("a3", resolved_result("a3"))
        pages = await self.walk(state, limit=2, status="pending")
        walked = [r for page in pages for r in page]
        assert sorted(_ids(walked)) == ["a0", "a2", "a4"]
        assert all(r.status == "pending" for r in walked)
        self.assert_newest_first(walked)

    async def test_11_returns_0_when_counting_an_empty_state(self, state: State) -> None:
        assert await state.count() == 0
        assert await state.count(status="pending") == 0

    async def test_12_counts_all_records_regardless_of_status(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.create(new_request("a2"))
        await state.resolve("a1", resolved_result("a1"))
        assert await state.count() == 2

    async def test_13_counts_records_filtered_by_status(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.create(new_request("a2"))
        await state.resolve("a1", resolved_result("a1"))
        assert await state.count(status="pending") == 1
        assert await state.count(status="resolved") == 1

    async def test_14_defaults_namespace_and_reads_across_all_namespaces_when_unfiltered(self, state: State) -> None:
        default = NewHumanRequest(
            id="g1",
            token="tok_g1",  # noqa: S106 - a resume token, not a password
            channel=CHANNEL,
            message="m",
            actions=actions().approve().build(),
        )
        assert default.namespace == "global"
        await state.create(default)
        await state.create(new_request("t1", namespace="team-a"))
        g1 = await state.get("g1")
        t1 = await state.get("t1")
        assert g1 is not None
        assert t1 is not None
        assert (g1.namespace, t1.namespace) == ("global", "team-a")
        assert sorted(_ids((await state.list()).items)) == ["g1", "t1"]
        assert await state.count() == 2
        # A falsy namespace means every namespace, as in the TypeScript SDK.
        assert sorted(_ids((await state.list(namespace="")).items)) == ["g1", "t1"]
        assert await state.count(namespace="") == 2

    async def test_15_lists_records_filtered_by_namespace(self, state: State) -> None:
        await state.create(new_request("g1"))
        await state.create(new_request("t1", namespace="team-a"))
        await state.create(new_request("t2", namespace="team-a"))
        assert sorted(_ids((await state.list(namespace="team-a")).items)) == ["t1", "t2"]
        assert _ids((await state.list(namespace="global")).items) == ["g1"]
        assert (await state.list(namespace="nobody")).items == []

    async def test_16_counts_records_filtered_by_namespace(self, state: State) -> None:
        await state.create(new_request("g1"))
        await state.create(new_request("t1", namespace="team-a"))
        await state.create(new_request("t2", namespace="team-a"))
        assert await state.count(namespace="team-a") == 2
        assert await state.count(namespace="global") == 1
        assert await state.count(namespace="nobody") == 0

    async def test_17_combines_namespace_and_status_filters(self, state: State) -> None:
        await state.create(new_request("g1"))
        await state.create(new_request("g2"))
        await state.create(new_request("t1", namespace="team-a"))
        await state.create(new_request("t2", namespace="team-a"))
        await state.resolve("g1", resolved_result("g1"))
        await state.resolve("t2", resolved_result("t2"))
        assert await state.count(namespace="team-a", status="pending") == 1
        assert await state.count(namespace="team-a", status="resolved") == 1
        assert await state.count(namespace="global", status="pending") == 1
        assert await state.count(namespace="global", status="resolved") == 1
        assert await state.count(namespace="nobody", status="pending") == 0
        assert _ids((await state.list(namespace="team-a", status="pending")).items) == ["t1"]
        assert _ids((await state.list(namespace="team-a", status="resolved")).items) == ["t2"]
        assert _ids((await state.list(namespace="global", status="pending")).items) == ["g2"]
        assert _ids((await state.list(namespace="global", status="resolved")).items) == ["g1"]

    async def test_18_paginates_within_a_namespace_filter(self, state: State) -> None:
        for i in range(3):
            await state.create(new_request(f"t{i}", namespace="team-a"))
            await state.create(new_request(f"g{i}"))
        pages = await self.walk(state, limit=2, namespace="team-a")
        walked = [r for page in pages for r in page]
        assert sorted(_ids(walked)) == ["t0", "t1", "t2"]
        assert len(walked) == 3
        self.assert_newest_first(walked)

    async def test_19_returns_null_for_an_unknown_external_id(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.set_external_id("a1", "ext-1")
        assert await state.find_by_external_id("missing") is None

    async def test_20_finds_a_record_by_resume_token(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.create(new_request("a2"))
        found = await state.find_by_token("tok_a2")
        assert found is not None
        assert found.id == "a2"

    async def test_21_returns_null_for_an_unknown_token(self, state: State) -> None:
        await state.create(new_request("a1"))
        assert await state.find_by_token("tok_missing") is None

    async def test_22_throws_when_attaching_an_external_id_to_an_unknown_human_request(self, state: State) -> None:
        with pytest.raises(UnknownRequestError, match=_message('Unknown human request "missing"')):
            await state.set_external_id("missing", "ext-1")
        assert await state.find_by_external_id("ext-1") is None

    async def test_23_throws_when_resolving_an_unknown_human_request(self, state: State) -> None:
        with pytest.raises(UnknownRequestError, match=_message('Unknown human request "missing"')):
            await state.resolve("missing", resolved_result("missing"))
        assert await state.count() == 0

    async def test_24_creates_and_gets_a_batch(self, state: State) -> None:
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL, message="Approve these?"))
        batch = await state.get_batch("b1")
        assert batch is not None
        assert (batch.id, batch.channel, batch.message) == ("b1", CHANNEL, "Approve these?")
        assert batch.created_at

    async def test_25_returns_null_for_an_unknown_batch_id(self, state: State) -> None:
        assert await state.get_batch("missing") is None

    async def test_26_attaches_a_batch_external_id(self, state: State) -> None:
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL, message="m"))
        await state.set_batch_external_id("b1", "bext-1")
        batch = await state.get_batch("b1")
        assert batch is not None
        assert batch.external_id == "bext-1"

    async def test_27_attaches_per_channel_batch_external_ids_for_escalation_deliveries(self, state: State) -> None:
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL, message="m"))
        await state.set_batch_external_id("b1", "bext-primary")
        await state.set_batch_external_id("b1", "bext-oncall", "oncall")
        batch = await state.get_batch("b1")
        assert batch is not None
        assert batch.external_id == "bext-primary"
        assert batch.external_ids == {CHANNEL: "bext-primary", "oncall": "bext-oncall"}

    async def test_28_throws_when_attaching_an_external_id_to_an_unknown_batch(self, state: State) -> None:
        with pytest.raises(UnknownBatchError, match=_message('Unknown batch "missing"')):
            await state.set_batch_external_id("missing", "bext-1")

    async def test_29_round_trips_batch_id_and_batch_index_on_human_request_records(self, state: State) -> None:
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL))
        await state.create(new_request("a0", batch_id="b1", batch_index=0))
        got = await state.get("a0")
        assert got is not None
        assert got.batch_id == "b1"
        assert got.batch_index == 0

    async def test_30_lists_batch_items_in_batch_index_order_regardless_of_insertion_order(self, state: State) -> None:
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL))
        await state.create(new_request("a2", batch_id="b1", batch_index=2))
        await state.create(new_request("a0", batch_id="b1", batch_index=0))
        await state.create(new_request("loose"))
        await state.create(new_request("a1", batch_id="b1", batch_index=1))
        assert _ids(await state.list_by_batch("b1")) == ["a0", "a1", "a2"]

    async def test_31_returns_an_empty_list_for_an_unknown_batch(self, state: State) -> None:
        await state.create(new_request("loose"))
        assert await state.list_by_batch("missing") == []

    async def test_32_appends_and_lists_timeline_entries_by_thread_id(self, state: State) -> None:
        first = TimelineEntry(
            id="e1",
            thread_id="th1",
            message="Reminder sent",
            detail={"channel": "slack", "attempt": 1},
            created_at="2026-11-25T17:03:04.512Z",
        )
        second = TimelineEntry(id="e2", thread_id="th1", message="Escalated", created_at="2026-11-25T17:03:05.000Z")
        await state.append_timeline(first)
        await state.append_timeline(second)
        entries = await state.timeline("th1")
        assert entries == [first, second]
        assert "detail" not in msgspec.json.decode(msgspec.json.encode(entries[1]))
        assert await state.timeline("missing") == []

    async def test_33_creates_and_gets_a_notify_delivery_record(self, state: State) -> None:
        await state.create_notify_delivery(NewNotifyDelivery(id="n1", channel="slack", message="FYI", group_id="g1"))
        delivery = await state.get_notify_delivery("n1")
        assert delivery is not None
        assert (delivery.id, delivery.channel, delivery.message, delivery.group_id) == ("n1", "slack", "FYI", "g1")
        assert delivery.external_id is None
        assert delivery.created_at

    async def test_34_returns_null_for_an_unknown_notify_delivery_id(self, state: State) -> None:
        assert await state.get_notify_delivery("missing") is None

    async def test_35_attaches_an_external_id_to_a_notify_delivery(self, state: State) -> None:
        await state.create_notify_delivery(NewNotifyDelivery(id="n1", channel="slack", message="FYI", group_id="g1"))
        await state.set_notify_delivery_external_id("n1", "next-1")
        delivery = await state.get_notify_delivery("n1")
        assert delivery is not None
        assert delivery.external_id == "next-1"

    async def test_36_throws_when_attaching_an_external_id_to_an_unknown_notify_delivery(self, state: State) -> None:
        with pytest.raises(UnknownNotifyDeliveryError, match=_message('Unknown notify delivery "missing"')):
            await state.set_notify_delivery_external_id("missing", "next-1")

    # === beyond the TypeScript contract ===============================================================
    async def test_timestamps_are_javascript_iso_strings(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.resolve("a1", resolved_result("a1"))
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL))
        await state.create_notify_delivery(NewNotifyDelivery(id="n1", channel="slack", message="m", group_id="g1"))
        record = await state.get("a1")
        batch = await state.get_batch("b1")
        delivery = await state.get_notify_delivery("n1")
        assert record is not None
        assert batch is not None
        assert delivery is not None
        for stamp in (record.created_at, record.resolved_at, batch.created_at, delivery.created_at):
            assert stamp is not None
            assert JS_ISO_TIMESTAMP.fullmatch(stamp), stamp
        assert record.resolved_at is not None
        assert record.resolved_at >= record.created_at

    async def test_create_with_a_token_in_use_raises_and_writes_nothing(self, state: State) -> None:
        await state.create(new_request("a1", token=SHARED_TOKEN))
        before = await state.get("a1")
        with pytest.raises(DuplicateTokenError):
            await state.create(new_request("a2", token=SHARED_TOKEN, namespace="team-a"))
        assert await state.get("a2") is None
        assert await state.get("a1") == before
        assert await state.count() == 1
        assert await state.count(namespace="team-a") == 0
        assert _ids((await state.list()).items) == ["a1"]
        owner = await state.find_by_token(SHARED_TOKEN)
        assert owner is not None
        assert owner.id == "a1"
        audit = getattr(state, "audit", None)
        if audit is not None:  # no event either
            assert await audit("a2") == []
            assert len(await audit("a1")) == 1

    async def test_create_rejects_an_invalid_namespace(self, state: State) -> None:
        with pytest.raises(ValidationError, match="Invalid namespace"):
            await state.create(new_request("a1", namespace="no spaces allowed"))
        assert await state.get("a1") is None
        assert await state.count() == 0
        audit = getattr(state, "audit", None)
        if audit is not None:
            assert await audit("a1") == []

    @pytest.mark.parametrize(("status", "namespace"), [(None, "no spaces allowed"), (None, "a:b"), ("open", None)])
    async def test_list_and_count_reject_an_invalid_filter(
        self, state: State, status: str | None, namespace: str | None
    ) -> None:
        await state.create(new_request("a1"))
        for read in (state.list, state.count):
            with pytest.raises(ValidationError, match=r"Invalid (namespace|status)"):
                await read(status=status, namespace=namespace)  # type: ignore[arg-type]

    async def test_concurrent_resolves_of_one_id_exactly_one_wins(self, state: State) -> None:
        await state.create(new_request("a1"))
        results = [resolved_result("a1", attempt=i) for i in range(50)]
        outcomes = await asyncio.gather(*(state.resolve("a1", r) for r in results), return_exceptions=True)
        winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
        losers = [outcome for outcome in outcomes if isinstance(outcome, AlreadyResolvedError)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 49, outcomes
        got = await state.get("a1")
        assert got is not None
        assert got.status == "resolved"
        assert got.result == results[winners[0]]
        assert await state.count(status="resolved") == 1
        assert await state.count(status="pending") == 0

    async def test_resolve_then_timeout_is_already_resolved_and_keeps_the_first_result(self, state: State) -> None:
        await state.create(new_request("a1"))
        timed_out = TimedOut(id="a1", external_ref="ext_a1")
        await state.resolve("a1", timed_out)
        with pytest.raises(AlreadyResolvedError):
            await state.resolve("a1", resolved_result("a1"))
        got = await state.get("a1")
        assert got is not None
        assert got.status == "resolved"
        assert got.result == timed_out

    async def test_set_external_id_keeps_a_resolution(self, state: State) -> None:
        await state.create(new_request("a1"))
        result = resolved_result("a1")
        await state.resolve("a1", result)
        await state.set_external_id("a1", "ext-late")
        got = await state.get("a1")
        assert got is not None
        assert (got.status, got.result, got.external_id) == ("resolved", result, "ext-late")

    @pytest.mark.parametrize("cursor", ["!!!", "YWJj", "not a cursor", "a"])
    async def test_an_invalid_cursor_raises_validation_error(self, state: State, cursor: str) -> None:
        await state.create(new_request("a1"))
        with pytest.raises(ValidationError, match=_message(f'Invalid inbox cursor "{cursor}"')):
            await state.list(cursor=cursor)

    async def test_a_cursor_is_a_position_not_a_record(self, state: State) -> None:
        for i in range(3):
            await state.create(new_request(f"a{i}"))
        everything = (await state.list()).items
        # A cursor names a position, not a record: one past the newest item yields the rest.
        newest = everything[0]
        rest = await state.list(cursor=encode_cursor(newest.created_at, newest.id))
        assert _ids(rest.items) == _ids(everything[1:])
        beyond = await state.list(cursor=encode_cursor("9999-12-31T23:59:59.999Z", "zzz"))
        assert _ids(beyond.items) == _ids(everything)
        before_all = await state.list(cursor=encode_cursor("0000-01-01T00:00:00.000Z", ""))
        assert before_all.items == []
        assert before_all.next_cursor is None

    @pytest.mark.parametrize("limit", [None, 0, -1, -100])
    async def test_limit_defaults_to_50_when_absent_or_below_1(self, state: State, limit: int | None) -> None:
        for i in range(60):
            await state.create(new_request(f"a{i:02d}"))
        page = await state.list(limit=limit)
        assert len(page.items) == DEFAULT_INBOX_LIMIT
        assert page.next_cursor is not None
        rest = await state.list(limit=limit, cursor=page.next_cursor)
        assert len(rest.items) == 10
        assert rest.next_cursor is None
        self.assert_newest_first(page.items + rest.items)

    async def test_limit_is_honoured_exactly(self, state: State) -> None:
        for i in range(3):
            await state.create(new_request(f"a{i}"))
        one = await state.list(limit=1)
        assert len(one.items) == 1
        assert one.next_cursor is not None
        exact = await state.list(limit=3)
        assert len(exact.items) == 3
        assert exact.next_cursor is None

    @pytest.mark.slow  # creates 10001 records: deselect with -m 'not slow' when iterating
    async def test_limit_above_10000_is_clamped_to_10000(self, state: State) -> None:
        total = MAX_INBOX_LIMIT + 1
        for start in range(0, total, 500):
            await asyncio.gather(
                *(state.create(new_request(f"r{i:05d}")) for i in range(start, min(total, start + 500)))
            )
        assert await state.count() == total
        page = await state.list(limit=MAX_INBOX_LIMIT * 10)
        assert len(page.items) == MAX_INBOX_LIMIT
        assert page.next_cursor is not None
        rest = await state.list(limit=MAX_INBOX_LIMIT * 10, cursor=page.next_cursor)
        assert len(rest.items) == 1

    async def test_ties_on_created_at_order_by_id_descending(self, state: State) -> None:
        ids = [f"x{i}" for i in range(20)]
        await asyncio.gather(*(state.create(new_request(request_id)) for request_id in ids))
        walked = [r for page in await self.walk(state, limit=3) for r in page]
        assert sorted(_ids(walked)) == sorted(ids)
        self.assert_newest_first(walked)
        for newer, older in itertools.pairwise(walked):
            if newer.created_at == older.created_at:
                assert newer.id > older.id

    async def test_json_round_trip_of_a_nested_context(self, state: State) -> None:
        context: dict[str, Any] = {
            "zeta": "keys keep their order",
            "empty_list": [],
            "empty_object": {},
            "big": 12345678901234567,
            "negative_big": -9007199254740993,
            "float": 0.30000000000000004,
            "unicode": "héllo ✓ 日本語 🚀",
            "slash": "a/b/c</script>",
            "escapes": 'quote " backslash \\ newline \n tab \t',
            "nested": {"list": [1, [2, []], {"x": None, "y": [{}]}], "flag": False, "none": None},
            "alpha": 1,
        }
        original = copy.deepcopy(context)
        await state.create(new_request("a1", context=context))
        got = await state.get("a1")
        assert got is not None
        assert got.context == original
        assert list(got.context) == list(original)
        assert msgspec.json.encode(got.context) == msgspec.json.encode(original)
        await state.create_batch(NewBatch(id="b1", channel=CHANNEL, context=context))
        batch = await state.get_batch("b1")
        assert batch is not None
        assert msgspec.json.encode(batch.context) == msgspec.json.encode(original)
        entry = TimelineEntry(
            id="e1", thread_id="a1", message="m", detail=context, created_at="2026-11-25T17:03:04.512Z"
        )
        await state.append_timeline(entry)
        (stored,) = await state.timeline("a1")
        assert msgspec.json.encode(stored.detail) == msgspec.json.encode(original)

    async def test_actions_with_every_field_kind_round_trip(self, state: State) -> None:
        built: list[Action] = (
            actions()
            .approve(
                label="Ship it",
                submit_label="Send",
                close_label="Back",
                fields={
                    "title": field.text(label="Title", default="Hello / 世界"),
                    "body": field.textarea(label="Body"),
                    "tone": field.select(label="Tone", options=["warm", "formal"], default="warm"),
                    "notify": field.confirm(label="Notify?", default=False),
                },
            )
            .deny(style="default")
            .custom("later", label="Later")
            .build()
        )
        request = new_request("a1")
        request.actions = built
        await state.create(request)
        got = await state.get("a1")
        assert got is not None
        assert got.actions == built
        fields = got.actions[0].fields
        assert isinstance(fields["title"], TextField)
        assert isinstance(fields["body"], TextAreaField)
        assert isinstance(fields["tone"], SelectField)
        assert isinstance(fields["notify"], ConfirmField)
        assert fields["notify"].default is False
        assert list(fields) == ["title", "body", "tone", "notify"]

    async def test_returned_records_are_copies(self, state: State) -> None:
        context: dict[str, Any] = {"items": [1, 2], "meta": {"k": "v"}}
        request = new_request("a1", context=context)
        await state.create(request)
        # Mutating the caller's input after create changes nothing stored.
        context["items"].append(3)
        context["meta"]["k"] = "changed"
        request.message = "changed"
        got = await state.get("a1")
        assert got is not None
        assert got.context == {"items": [1, 2], "meta": {"k": "v"}}
        assert got.message == "Approve a1?"
        # Mutating a returned record changes nothing stored.
        assert got.context is not None
        got.context["items"].append(99)
        got.status = "resolved"
        got.actions.append(Action(id="sneaky"))
        got.external_ids = {"x": "y"}
        listed = (await state.list()).items[0]
        assert listed.context is not None
        listed.context["meta"]["k"] = "from list"
        by_token = await state.find_by_token("tok_a1")
        assert by_token is not None
        by_token.message = "from find_by_token"
        again = await state.get("a1")
        assert again is not None
        assert again.context == {"items": [1, 2], "meta": {"k": "v"}}
        assert again.status == "pending"
        assert [a.id for a in again.actions] == ["approve"]
        assert again.external_ids is None
        assert again.message == "Approve a1?"
        # Results and timeline entries too.
        result = resolved_result("a1", note="first")
        await state.resolve("a1", result)
        result.feedbacks["note"] = "rewritten"
        resolved = await state.get("a1")
        assert resolved is not None
        assert isinstance(resolved.result, Resolved)
        assert resolved.result.feedbacks == {"note": "first"}
        resolved.result.feedbacks["note"] = "rewritten again"
        final = await state.get("a1")
        assert final is not None
        assert isinstance(final.result, Resolved)
        assert final.result.feedbacks == {"note": "first"}
        detail: dict[str, Any] = {"n": 1}
        await state.append_timeline(
            TimelineEntry(id="e1", thread_id="th", message="m", detail=detail, created_at="2026-11-25T17:03:04.512Z")
        )
        detail["n"] = 2
        (entry,) = await state.timeline("th")
        assert entry.detail == {"n": 1}
        assert entry.detail is not None
        entry.detail["n"] = 3
        (entry_again,) = await state.timeline("th")
        assert entry_again.detail == {"n": 1}

    async def test_find_by_external_id_prefers_the_primary_then_any_channel(self, state: State) -> None:
        await state.create(new_request("a1"))
        await state.create(new_request("a2"))
        await state.set_external_id("a1", "ext-a1")
        await state.set_external_id("a2", "ext-a2-oncall", "oncall")
        primary = await state.find_by_external_id("ext-a1")
        escalated = await state.find_by_external_id("ext-a2-oncall")
        assert primary is not None
        assert escalated is not None
        assert (primary.id, escalated.id) == ("a1", "a2")
        a2 = await state.get("a2")
        assert a2 is not None
        assert a2.external_id is None  # a non-primary channel does not set the primary id
        assert a2.external_ids == {"oncall": "ext-a2-oncall"}

    async def test_timeline_orders_by_created_at_whatever_the_insertion_order(self, state: State) -> None:
        later = TimelineEntry(id="e2", thread_id="th", message="later", created_at="2026-11-25T17:03:05.000Z")
        earlier = TimelineEntry(id="e1", thread_id="th", message="earlier", created_at="2026-11-25T17:03:04.000Z")
        other = TimelineEntry(id="e3", thread_id="other", message="elsewhere", created_at="2026-11-25T17:03:04.500Z")
        await state.append_timeline(later)
        await state.append_timeline(other)
        await state.append_timeline(earlier)
        assert await state.timeline("th") == [earlier, later]
        assert await state.timeline("other") == [other]

    async def test_audit_lists_the_subjects_events_in_order(self, state: State) -> None:
        audit = getattr(state, "audit", None)
        if audit is None:
            pytest.skip(f"{type(state).__name__} has no audit(id) method")
        from ..history.events import RequestCreated, RequestExternalIdSet, RequestResolved

        await state.create(new_request("a1"))
        await state.create(new_request("other"))
        await state.set_external_id("a1", "ext-1")
        await state.set_external_id("other", "ext-2")
        result = resolved_result("a1")
        await state.resolve("a1", result)
        trail = await audit("a1")
        events = [item.event for item in trail]
        assert [type(e) for e in events] == [RequestCreated, RequestExternalIdSet, RequestResolved]
        created, ext_set, resolved = events
        assert isinstance(created, RequestCreated)
        assert created.record.id == "a1"
        assert created.record.status == "pending"
        assert isinstance(ext_set, RequestExternalIdSet)
        assert (ext_set.id, ext_set.key, ext_set.external_id) == ("a1", CHANNEL, "ext-1")
        assert isinstance(resolved, RequestResolved)
        assert (resolved.id, resolved.result) == ("a1", result)
        positions = [item.position for item in trail]
        assert len(set(positions)) == 3
        as_numbers = [tuple(int(part) for part in p.split("-")) for p in positions]
        assert as_numbers == sorted(as_numbers), positions
        other_trail = await audit("other")
        assert [type(item.event) for item in other_trail] == [RequestCreated, RequestExternalIdSet]
        assert await audit("missing") == []

    async def test_timeline_pages_oldest_first_with_the_last_entry_id_as_cursor(self, state: State) -> None:
        entries = [
            TimelineEntry(id=f"e{n}", thread_id="th", message=f"m{n}", created_at=f"2026-11-25T17:03:{n:02d}.000Z")
            for n in range(7)
        ]
        for entry in reversed(entries):
            await state.append_timeline(entry)
        assert await state.timeline("th") == entries  # the old call: everything
        pages: list[list[TimelineEntry]] = []
        cursor: str | None = None
        while True:
            page = await state.timeline("th", limit=3, cursor=cursor)
            if not page:
                break
            pages.append(page)
            cursor = page[-1].id
        assert pages == [entries[0:3], entries[3:6], entries[6:7]]
        assert await state.timeline("th", cursor="e4") == entries[5:]
        assert await state.timeline("th", limit=2) == entries[:2]
        assert await state.timeline("empty", limit=3) == []
        with pytest.raises(ValidationError, match=_message('Invalid timeline cursor "nope"')):
            await state.timeline("th", limit=3, cursor="nope")

    async def test_audit_pages_oldest_first_with_the_last_position_as_cursor(self, state: State) -> None:
        audit = getattr(state, "audit", None)
        if audit is None:
            pytest.skip(f"{type(state).__name__} has no audit(id) method")
        await state.create(new_request("a1"))
        for n in range(6):
            await state.set_external_id("a1", f"ext-{n}")
        everything = await audit("a1")
        assert len(everything) == 7
        pages = []
        cursor = None
        while True:
            page = await audit("a1", limit=3, cursor=cursor)
            if not page:
                break
            pages.append(page)
            cursor = page[-1].position
        assert pages == [everything[0:3], everything[3:6], everything[6:7]]
        assert await audit("a1", cursor=everything[4].position) == everything[5:]
        assert await audit("missing", limit=3) == []
        with pytest.raises(ValidationError, match=_message('Invalid audit cursor "nope"')):
            await audit("a1", limit=3, cursor="nope")

    async def test_audit_records_exactly_one_resolution_under_concurrency(self, state: State) -> None:
        audit = getattr(state, "audit", None)
        if audit is None:
            pytest.skip(f"{type(state).__name__} has no audit(id) method")
        from ..history.events import RequestResolved

        await state.create(new_request("a1"))
        await asyncio.gather(
            *(state.resolve("a1", resolved_result("a1", attempt=i)) for i in range(20)), return_exceptions=True
        )
        trail = await audit("a1")
        assert sum(isinstance(item.event, RequestResolved) for item in trail) == 1
