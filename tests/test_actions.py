"""Actions and fields: JSON shapes, builders, labels/styles, validation, legacy decoding (hitl_streams.actions)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hitl_streams import (
    Action,
    ActionsBuilder,
    ConfirmField,
    Field,
    SelectField,
    TextAreaField,
    TextField,
    ValidationError,
    actions,
    field,
    normalize_actions,
    validate_actions,
)
from hitl_streams.actions import (
    action_by_id,
    default_label,
    default_style,
    effective_close_label,
    effective_label,
    effective_style,
    effective_submit_label,
)


def encode(value: object) -> str:
    return msgspec.json.encode(value).decode()


# --- builders ----------------------------------------------------------------------------------------
def test_builder_chain_returns_a_list_of_actions_in_order() -> None:
    built = actions().approve(label="Ship it", fields={"note": field.text(label="Note")}).deny().custom("x").build()
    assert isinstance(built, list)
    assert all(isinstance(a, Action) for a in built)
    assert [a.id for a in built] == ["approve", "deny", "x"]
    assert built[0].label == "Ship it"
    assert built[0].fields == {"note": TextField(label="Note")}
    assert built[1] == Action(id="deny")
    assert built[2] == Action(id="x")


def test_builder_is_immutable() -> None:
    base = actions().approve()
    with_deny = base.deny()
    with_custom = base.custom("later", label="Later")
    assert isinstance(base, ActionsBuilder)
    assert [a.id for a in base.build()] == ["approve"]
    assert [a.id for a in with_deny.build()] == ["approve", "deny"]
    assert [a.id for a in with_custom.build()] == ["approve", "later"]
    first = base.build()
    first.append(Action(id="sneaky"))
    assert [a.id for a in base.build()] == ["approve"]


def test_builder_does_not_check_duplicates_validate_actions_does() -> None:
    built = actions().approve().approve().build()
    assert [a.id for a in built] == ["approve", "approve"]
    with pytest.raises(ValidationError, match=r'^Duplicate action id "approve"\.$'):
        validate_actions(built)


def test_builder_options_and_their_json() -> None:
    built = (
        actions()
        .approve(label="Ship", submit_label="Send", close_label="Back", style="danger")
        .deny(fields={"why": field.textarea(label="Why?", default="")})
        .custom("later", style="default")
        .build()
    )
    assert encode(built) == (
        '[{"id":"approve","label":"Ship","submitLabel":"Send","closeLabel":"Back","style":"danger"},'
        '{"id":"deny","fields":{"why":{"kind":"textarea","label":"Why?","default":""}}},'
        '{"id":"later","style":"default"}]'
    )


def test_builders_take_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        actions().approve("Ship")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        field.text("Title")  # type: ignore[call-arg]


# --- fields ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (field.text(label="Title"), '{"kind":"text","label":"Title"}'),
        (field.text(label="Title", default="Hi"), '{"kind":"text","label":"Title","default":"Hi"}'),
        (field.textarea(label="Body", default="a\nb"), '{"kind":"textarea","label":"Body","default":"a\\nb"}'),
        (
            field.select(label="Tone", options=["warm", "formal"]),
            '{"kind":"select","label":"Tone","options":["warm","formal"]}',
        ),
        (
            field.select(label="Tone", options=("warm", "formal"), default="warm"),
            '{"kind":"select","label":"Tone","options":["warm","formal"],"default":"warm"}',
        ),
        (field.confirm(label="Sure?"), '{"kind":"confirm","label":"Sure?"}'),
        (field.confirm(label="Sure?", default=False), '{"kind":"confirm","label":"Sure?","default":false}'),
        (field.confirm(label="Sure?", default=True), '{"kind":"confirm","label":"Sure?","default":true}'),
    ],
)
def test_field_json_is_tagged_on_kind_and_omits_an_absent_default(built: Field, expected: str) -> None:
    assert encode(built) == expected
    assert msgspec.json.decode(expected, type=Field) == built


def test_field_builders_return_the_field_types() -> None:
    assert isinstance(field.text(label="a"), TextField)
    assert isinstance(field.textarea(label="a"), TextAreaField)
    assert isinstance(field.select(label="a", options=["x"]), SelectField)
    assert isinstance(field.confirm(label="a"), ConfirmField)
    assert field.text(label="a", default="d").default == "d"


def test_unknown_field_kind_does_not_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode('{"kind":"slider","label":"x"}', type=Field)


def test_action_json_omits_absent_optionals_and_empty_fields() -> None:
    assert encode(Action(id="approve")) == '{"id":"approve"}'
    assert encode(Action(id="approve", fields={})) == '{"id":"approve"}'
    decoded = msgspec.json.decode(
        '{"id":"x","submitLabel":"Go","fields":{"a":{"kind":"text","label":"A"}}}', type=Action
    )
    assert decoded == Action(id="x", submit_label="Go", fields={"a": TextField(label="A")})


# --- labels and styles -------------------------------------------------------------------------------
def test_default_labels_and_styles() -> None:
    assert [default_label(i) for i in ("approve", "deny", "later")] == ["Approve", "Deny", "later"]
    assert [default_style(i) for i in ("approve", "deny", "later")] == ["primary", "danger", "default"]


def test_effective_labels_fall_back_in_the_documented_order() -> None:
    bare = Action(id="approve")
    labelled = Action(id="approve", label="Ship")
    full = Action(id="approve", label="Ship", submit_label="Send", close_label="Back", style="default")
    assert (effective_label(bare), effective_label(labelled)) == ("Approve", "Ship")
    assert (effective_submit_label(bare), effective_submit_label(labelled), effective_submit_label(full)) == (
        "Approve",
        "Ship",
        "Send",
    )
    assert (effective_close_label(bare), effective_close_label(full)) == ("Cancel", "Back")
    assert (effective_style(bare), effective_style(full), effective_style(Action(id="deny"))) == (
        "primary",
        "default",
        "danger",
    )
    assert effective_label(Action(id="approve", label="")) == ""


def test_action_by_id() -> None:
    built = actions().approve().deny().build()
    assert action_by_id(built, "deny") == Action(id="deny")
    assert action_by_id(built, "missing") is None


# --- validate_actions --------------------------------------------------------------------------------
def test_validate_actions_requires_at_least_one() -> None:
    with pytest.raises(ValidationError, match=r"^waitForHuman requires at least one action\.$"):
        validate_actions([])


def test_validate_actions_rejects_duplicates_and_accepts_unique_ids() -> None:
    with pytest.raises(ValidationError, match=r'^Duplicate action id "x"\.$'):
        validate_actions([Action(id="x"), Action(id="y"), Action(id="x")])
    validate_actions(actions().approve().deny().custom("x").build())


# --- normalize_actions (REF §5.10) -------------------------------------------------------------------
def test_normalize_an_array_renames_submit_to_approve() -> None:
    raw: list[dict[str, Any]] = [
        {"id": "submit", "label": "Send", "fields": {"n": {"kind": "text", "label": "N"}}},
        {"id": "deny"},
        {"id": "later", "style": "default"},
    ]
    assert normalize_actions(raw) == [
        Action(id="approve", label="Send", fields={"n": TextField(label="N")}),
        Action(id="deny"),
        Action(id="later", style="default"),
    ]
    assert raw[0]["id"] == "submit", "the input is not modified"


def test_normalize_legacy_object_gives_approve_then_deny() -> None:
    assert normalize_actions({"submit": {"label": "Send"}, "deny": {"label": "No"}}) == [
        Action(id="approve", label="Send"),
        Action(id="deny", label="No"),
    ]
    assert normalize_actions({"deny": {}, "submit": {}}) == [Action(id="approve"), Action(id="deny")]
    assert normalize_actions({"deny": {"label": "No"}}) == [Action(id="deny", label="No")]


def test_normalize_legacy_fields_give_one_approve_action() -> None:
    fields = {"note": {"kind": "text", "label": "Note", "default": "x"}}
    assert normalize_actions(None, fields) == [
        Action(id="approve", fields={"note": TextField(label="Note", default="x")})
    ]
    assert normalize_actions({"submit": None}, fields) == [
        Action(id="approve", fields={"note": TextField(label="Note", default="x")})
    ]


def test_normalize_nothing_gives_a_bare_approve() -> None:
    assert normalize_actions(None) == [Action(id="approve")]
    assert normalize_actions(None, {}) == [Action(id="approve")]
    assert normalize_actions({}) == [Action(id="approve")]
    assert normalize_actions([]) == []


@pytest.mark.parametrize(
    ("raw", "legacy_fields"),
    [
        ([1], None),
        (["approve"], None),
        ([{"label": "no id"}], None),
        ([{"id": "a", "style": "loud"}], None),
        ({"submit": {"fields": {"x": {"kind": "slider", "label": "x"}}}}, None),
        (None, {"x": {"label": "no kind"}}),
    ],
)
def test_normalize_rejects_malformed_shapes_with_validation_error(raw: Any, legacy_fields: Any) -> None:
    with pytest.raises(ValidationError, match=r"^Invalid actions"):
        normalize_actions(raw, legacy_fields)
