"""Record and result JSON: camelCase, absent optionals omitted, `edited` only when true (REF §2.1, SPEC §3)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hitl_streams import (
    Action,
    BatchRecord,
    HumanRequestRecord,
    HumanResult,
    InboxPage,
    NewBatch,
    NewHumanRequest,
    NewNotifyDelivery,
    NotifyDeliveryRecord,
    Resolved,
    Reviewer,
    TextField,
    TimedOut,
    TimelineEntry,
    is_resolved,
)

AT = "2026-11-25T17:03:04.512Z"
LATER = "2026-11-25T17:05:00.000Z"


def encode(value: object) -> str:
    return msgspec.json.encode(value).decode()


# --- results -----------------------------------------------------------------------------------------
def test_resolved_json_minimal() -> None:
    result = Resolved(id="a1", action_id="approve", external_ref="ref", feedbacks={})
    assert encode(result) == '{"type":"RESOLVED","id":"a1","actionId":"approve","externalRef":"ref","feedbacks":{}}'


def test_resolved_json_with_reviewer_and_edited() -> None:
    result = Resolved(
        id="a1",
        action_id="approve",
        external_ref="ref",
        feedbacks={"note": "ok", "n": 1},
        by=Reviewer(id="u1", email="ada@example.com"),
        edited=True,
    )
    assert encode(result) == (
        '{"type":"RESOLVED","id":"a1","actionId":"approve","externalRef":"ref","feedbacks":{"note":"ok","n":1},'
        '"by":{"id":"u1","email":"ada@example.com"},"edited":true}'
    )


def test_edited_false_is_omitted_and_decodes_either_way() -> None:
    result = Resolved(id="a1", action_id="deny", external_ref="r", feedbacks={}, edited=False)
    assert '"edited"' not in encode(result)
    with_false = '{"type":"RESOLVED","id":"a1","actionId":"deny","externalRef":"r","feedbacks":{},"edited":false}'
    assert msgspec.json.decode(with_false, type=HumanResult) == result


def test_timed_out_json() -> None:
    assert encode(TimedOut(id="a1", external_ref="ref")) == '{"type":"TIMED_OUT","id":"a1","externalRef":"ref"}'


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"TIMED_OUT","id":"a1","externalRef":"ref"}',
        '{"type":"RESOLVED","id":"a1","actionId":"approve","externalRef":"ref","feedbacks":{}}',
        '{"type":"RESOLVED","id":"a1","actionId":"approve","externalRef":"ref","feedbacks":{"a":[]},"by":{"name":"A"},"edited":true}',
    ],
)
def test_results_round_trip_byte_for_byte(text: str) -> None:
    assert encode(msgspec.json.decode(text, type=HumanResult)) == text


def test_results_from_typescript_key_order_decode() -> None:
    text = (
        '{"type":"RESOLVED","actionId":"approve","id":"a1","externalRef":"r",'
        '"by":{"name":"Ada"},"feedbacks":{},"edited":true}'
    )
    decoded = msgspec.json.decode(text, type=HumanResult)
    assert decoded == Resolved(
        id="a1", action_id="approve", external_ref="r", feedbacks={}, by=Reviewer(name="Ada"), edited=True
    )


def test_unknown_result_type_does_not_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode('{"type":"CANCELLED","id":"a1","externalRef":"r"}', type=HumanResult)


def test_reviewer_is_free_form_and_keyword_only() -> None:
    assert encode(Reviewer()) == "{}"
    assert encode(Reviewer(name="Ada")) == '{"name":"Ada"}'
    with pytest.raises(TypeError):
        Reviewer("u1")  # type: ignore[call-arg]


def test_is_resolved() -> None:
    approve = Resolved(id="a", action_id="approve", external_ref="r", feedbacks={})
    assert is_resolved(approve, "approve")
    assert not is_resolved(approve, "deny")
    assert not is_resolved(TimedOut(id="a", external_ref="r"), "approve")
    assert not is_resolved(None, "approve")


# --- records -----------------------------------------------------------------------------------------
def test_new_human_request_defaults_namespace_and_is_keyword_only() -> None:
    request = NewHumanRequest(id="a1", token="t", channel="c", message="m", actions=[Action(id="approve")])
    assert request.namespace == "global"
    assert msgspec.json.decode(encode(request), type=NewHumanRequest) == request
    team = NewHumanRequest(id="a1", token="t", channel="c", namespace="team-a", message="m", actions=[])
    assert encode(team) == '{"id":"a1","token":"t","channel":"c","namespace":"team-a","message":"m","actions":[]}'
    with pytest.raises(TypeError):
        NewHumanRequest("a1", "t", "c", "global", "m", [])  # type: ignore[call-arg]


def test_pending_record_json_omits_every_absent_optional() -> None:
    record = HumanRequestRecord(
        id="a1",
        token="tok_a1",
        channel="lead-approvals",
        namespace="global",
        message="Approve?",
        actions=[Action(id="approve")],
        status="pending",
        created_at=AT,
    )
    assert encode(record) == (
        '{"id":"a1","token":"tok_a1","channel":"lead-approvals","namespace":"global","message":"Approve?",'
        '"actions":[{"id":"approve"}],"status":"pending","createdAt":"2026-11-25T17:03:04.512Z"}'
    )
    assert record.external_ids is None
    assert record.context is None


def test_resolved_record_json_uses_camel_case_for_every_field() -> None:
    record = HumanRequestRecord(
        id="a1",
        token="tok_a1",
        channel="lead-approvals",
        namespace="team-a",
        message="Approve?",
        actions=[Action(id="approve", fields={"note": TextField(label="Note")})],
        context={"deal": {"amount": 12345678901234567}},
        status="resolved",
        external_id="ext-1",
        external_ids={"lead-approvals": "ext-1", "oncall": "ext-2"},
        result=Resolved(id="a1", action_id="approve", external_ref="ext-1", feedbacks={"note": "ok"}),
        created_at=AT,
        resolved_at=LATER,
        batch_id="b1",
        batch_index=0,
    )
    text = encode(record)
    assert text == (
        '{"id":"a1","token":"tok_a1","channel":"lead-approvals","namespace":"team-a","message":"Approve?",'
        '"actions":[{"id":"approve","fields":{"note":{"kind":"text","label":"Note"}}}],'
        '"context":{"deal":{"amount":12345678901234567}},"status":"resolved","externalId":"ext-1",'
        '"externalIds":{"lead-approvals":"ext-1","oncall":"ext-2"},'
        '"result":{"type":"RESOLVED","id":"a1","actionId":"approve","externalRef":"ext-1","feedbacks":{"note":"ok"}},'
        '"createdAt":"2026-11-25T17:03:04.512Z","resolvedAt":"2026-11-25T17:05:00.000Z","batchId":"b1","batchIndex":0}'
    )
    assert msgspec.json.decode(text, type=HumanRequestRecord) == record


def test_record_written_by_typescript_decodes_whatever_the_key_order_and_extra_keys() -> None:
    text = (
        '{"status":"resolved","createdAt":"2026-11-25T17:03:04.512Z","id":"a1","token":"t","channel":"c",'
        '"namespace":"global","message":"m","actions":[{"id":"approve"}],"resolvedAt":"2026-11-25T17:05:00.000Z",'
        '"result":{"type":"TIMED_OUT","id":"a1","externalRef":"r"},"someFutureField":true}'
    )
    record = msgspec.json.decode(text, type=HumanRequestRecord)
    assert record.result == TimedOut(id="a1", external_ref="r")
    assert (record.status, record.created_at, record.resolved_at) == ("resolved", AT, LATER)


def test_status_is_pending_or_resolved_only() -> None:
    text = (
        '{"id":"a1","token":"t","channel":"c","namespace":"g","message":"m","actions":[],'
        '"status":"timed_out","createdAt":"x"}'
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(text, type=HumanRequestRecord)


def test_batch_json() -> None:
    assert encode(NewBatch(id="b1", channel="c")) == '{"id":"b1","channel":"c"}'
    batch = BatchRecord(
        id="b1",
        channel="c",
        message="Approve these",
        actions=[Action(id="approve")],
        context={"k": []},
        external_id="bx",
        external_ids={"c": "bx"},
        created_at=AT,
    )
    assert encode(batch) == (
        '{"id":"b1","channel":"c","message":"Approve these","actions":[{"id":"approve"}],"context":{"k":[]},'
        '"externalId":"bx","externalIds":{"c":"bx"},"createdAt":"2026-11-25T17:03:04.512Z"}'
    )
    assert encode(BatchRecord(id="b1", channel="c", created_at=AT)) == (
        '{"id":"b1","channel":"c","createdAt":"2026-11-25T17:03:04.512Z"}'
    )


def test_timeline_entry_json_omits_absent_detail() -> None:
    bare = TimelineEntry(id="e1", thread_id="th", message="m", created_at=AT)
    assert encode(bare) == '{"id":"e1","threadId":"th","message":"m","createdAt":"2026-11-25T17:03:04.512Z"}'
    detailed = TimelineEntry(id="e1", thread_id="th", message="m", detail={"a": {"b": []}}, created_at=AT)
    assert encode(detailed) == (
        '{"id":"e1","threadId":"th","message":"m","detail":{"a":{"b":[]}},"createdAt":"2026-11-25T17:03:04.512Z"}'
    )


def test_notify_delivery_json() -> None:
    new = NewNotifyDelivery(id="n1", channel="slack", message="FYI", group_id="g1")
    assert encode(new) == '{"id":"n1","channel":"slack","message":"FYI","groupId":"g1"}'
    inbox_noop = NotifyDeliveryRecord(id="n1", channel="inbox", message="FYI", group_id="g1", created_at=AT)
    assert encode(inbox_noop) == (
        '{"id":"n1","channel":"inbox","message":"FYI","groupId":"g1","createdAt":"2026-11-25T17:03:04.512Z"}'
    )
    sent = NotifyDeliveryRecord(id="n1", channel="slack", message="FYI", group_id="g1", external_id="x", created_at=AT)
    assert '"externalId":"x"' in encode(sent)


def test_inbox_page_json_omits_an_absent_cursor() -> None:
    assert encode(InboxPage(items=[])) == '{"items":[]}'
    assert encode(InboxPage(items=[], next_cursor="abc")) == '{"items":[],"nextCursor":"abc"}'


def test_context_round_trips_big_ints_empty_containers_unicode_and_slashes() -> None:
    context: dict[str, Any] = {
        "big": 12345678901234567,
        "bigger": 123456789012345678901234567890,
        "empty": [],
        "obj": {},
        "text": "héllo ✓ 日本 🚀 a/b </script>",
        "z": None,
        "a": [0.5, -0.0, 1e-7],
    }
    record = HumanRequestRecord(
        id="a1",
        token="t",
        channel="c",
        namespace="g",
        message="m",
        actions=[],
        context=context,
        status="pending",
        created_at=AT,
    )
    text = encode(record)
    assert '"big":12345678901234567' in text
    assert '"bigger":123456789012345678901234567890' in text
    assert '"text":"héllo ✓ 日本 🚀 a/b </script>"' in text  # no \\u escapes, no escaped slash
    again = msgspec.json.decode(text, type=HumanRequestRecord)
    assert again.context == context
    assert list(again.context or {}) == list(context)
    assert encode(again) == text
