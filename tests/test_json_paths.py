"""JSON paths: parsing (with clear errors), reading values, retain and destroy filters."""

from __future__ import annotations

import copy

import pytest

from models.json_paths import (
    MAX_LENGTH,
    MAX_SEGMENTS,
    WILDCARD,
    JsonPathError,
    destroy,
    format_segments,
    parse_path,
    parse_paths,
    retain,
    select,
)

ORDER = {
    "id": "ord_1",
    "name": "Order one",
    "card": {"number": "4111111111111111", "brand": "visa"},
    "items": [
        {"sku": "A-1", "price": 3, "meta": {"colour": "red"}},
        {"sku": "B-2", "price": 5},
        {"price": 7},
    ],
    "usage": {"total_tokens": 400, "prompt_tokens": 100},
}


def paths(*texts: str):
    return parse_paths(list(texts))


def test_parse_plain_wildcard_and_escaped_segments():
    assert parse_path("usage.total_tokens").segments == ("usage", "total_tokens")
    assert parse_path("items.*.sku").segments == ("items", WILDCARD, "sku")
    assert parse_path("*").segments == (WILDCARD,)
    assert parse_path("a\\.b.c").segments == ("a.b", "c")
    assert parse_path("\\*").segments == ("*",)
    assert parse_path("back\\\\slash").segments == ("back\\slash",)
    assert parse_path("items.0.sku").segments == ("items", "0", "sku")
    assert str(parse_path("items.*.sku")) == "items.*.sku"


@pytest.mark.parametrize(
    "segments",
    [("a.b", WILDCARD, "c"), ("*",), ("x\\y", "0"), ("plain",)],
)
def test_format_round_trips(segments):
    assert parse_path(format_segments(segments)).segments == segments


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "must not be empty"),
        ("a..b", "empty segment at character 3"),
        (".a", "empty segment at character 1"),
        ("a.", "empty segment at character 3"),
        ("a\\", "lone backslash"),
        ("a\\n", "'\\n' is not an escape"),
        ("it*ems", "mixes * with other characters"),
        ("**", "mixes * with other characters"),
        ("\\**", "mixes * with other characters"),
        ("a" * (MAX_LENGTH + 1), f"longer than {MAX_LENGTH}"),
        (".".join(["a"] * (MAX_SEGMENTS + 1)), f"more than {MAX_SEGMENTS} segments"),
    ],
)
def test_bad_paths_are_refused_with_a_reason(text, words):
    with pytest.raises(JsonPathError) as caught:
        parse_path(text)
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", [None, 3, ["a"], {"a": 1}, b"a"])
def test_a_path_must_be_a_string(value):
    with pytest.raises(JsonPathError, match="must be a string"):
        parse_path(value)


def test_parse_paths_names_the_failing_item():
    with pytest.raises(JsonPathError, match=r"^\[1\]: .*empty segment"):
        parse_paths(["ok", "a..b"])
    with pytest.raises(JsonPathError, match="expected a list"):
        parse_paths("a.b")


def test_select_reads_values_in_document_order():
    assert select(ORDER, parse_path("usage.total_tokens")) == [400]
    assert select(ORDER, parse_path("items.*.sku")) == ["A-1", "B-2"]
    assert select(ORDER, parse_path("items.1.price")) == [5]
    assert select(ORDER, parse_path("card.*")) == ["4111111111111111", "visa"]
    assert select(ORDER, parse_path("missing.field")) == []
    assert select(ORDER, parse_path("name.deeper")) == []  # a string has no fields
    assert select(ORDER, parse_path("items.x")) == []  # arrays only take indices
    assert select({"a.b": 1, "a": {"b": 2}}, parse_path("a\\.b")) == [1]
    assert select({"0": "key"}, parse_path("0")) == ["key"]
    assert select([10, 20], parse_path("1")) == [20]


def test_retain_keeps_selected_fields_with_their_parents():
    before = copy.deepcopy(ORDER)
    result = retain(ORDER, paths("id", "name", "items.*.sku"))
    assert result == {
        "id": "ord_1",
        "name": "Order one",
        "items": [{"sku": "A-1"}, {"sku": "B-2"}, {}],
    }
    assert before == ORDER  # the input is never modified


def test_retain_keeps_a_selected_field_whole_and_drops_scalars_on_the_way():
    assert retain(ORDER, paths("card")) == {"card": ORDER["card"]}
    assert retain(ORDER, paths("id.deeper")) == {}
    assert retain(ORDER, paths("card.cvv")) == {"card": {}}
    assert retain(ORDER, paths("*")) == ORDER
    assert retain(ORDER, paths("items.0")) == {"items": [ORDER["items"][0]]}
    # overlapping paths: the shorter one keeps the whole subtree
    assert retain(ORDER, paths("card", "card.brand")) == {"card": ORDER["card"]}


def test_retain_with_a_scalar_root_or_no_paths_gives_none():
    assert retain("text", paths("a")) is None
    assert retain(ORDER, ()) is None


def test_destroy_removes_selected_fields_only():
    before = copy.deepcopy(ORDER)
    result = destroy(ORDER, paths("card.number", "items.*.meta", "usage"))
    assert result == {
        "id": "ord_1",
        "name": "Order one",
        "card": {"brand": "visa"},
        "items": [{"sku": "A-1", "price": 3}, {"sku": "B-2", "price": 5}, {"price": 7}],
    }
    assert before == ORDER


def test_destroy_array_items_and_paths_that_select_nothing():
    assert destroy(ORDER, paths("items.1"))["items"] == [ORDER["items"][0], ORDER["items"][2]]
    assert destroy(ORDER, paths("items.*"))["items"] == []
    assert destroy(ORDER, paths("nothing.here", "id.deeper")) == ORDER
    assert destroy("text", paths("a")) == "text"
    assert destroy(ORDER, ()) == ORDER
    assert destroy(ORDER, paths("*")) == {}


def test_destroy_then_retain_is_the_issue_example():
    stage_one = destroy(ORDER, paths("card.number"))
    combined = retain(stage_one, paths("id", "name", "items.*.sku", "card.number"))
    # a field destroyed earlier cannot be restored by a later retain
    assert combined == {
        "id": "ord_1",
        "name": "Order one",
        "card": {},
        "items": [{"sku": "A-1"}, {"sku": "B-2"}, {}],
    }
