"""models.json_limits: JSON from outside parsed with a nesting limit and standard numbers."""

from __future__ import annotations

import json

import pytest

from models.json_limits import MAX_DEPTH, JsonTooDeep, loads, nesting_depth_exceeds
from models.redaction import TOO_DEEP, bounded_body


def nested(depth: int, kind: str = "array") -> str:
    """A valid document `depth` levels deep: arrays, objects, or both in turn."""
    text = "1"
    for level in range(depth):
        use_array = kind == "array" or (kind == "mixed" and level % 2)
        text = f"[{text}]" if use_array else f'{{"k": {text}}}'
    return text


@pytest.mark.parametrize("kind", ["array", "object", "mixed"])
def test_the_limit_itself_is_accepted_and_one_more_level_is_refused(kind):
    assert json.loads(json.dumps(loads(nested(MAX_DEPTH, kind)))) is not None
    with pytest.raises(JsonTooDeep) as refused:
        loads(nested(MAX_DEPTH + 1, kind))
    assert refused.value.max_depth == MAX_DEPTH
    assert str(MAX_DEPTH) in str(refused.value)


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 10000 + "]" * 10000,
        '{"a":' * 10000 + "1" + "}" * 10000,
        "[" * 100000,  # never closed: the parser would still recurse into each one
        "[" * 100000 + "]",
        '{"a":' * 100000,
        '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
    ids=["arrays", "objects", "unclosed", "one-closed", "unclosed-objects", "deep-inside"],
)
def test_deep_documents_are_refused_not_a_recursion_error(raw):
    for form in (raw, raw.encode()):
        with pytest.raises(JsonTooDeep):
            loads(form)


def test_a_custom_limit_applies():
    assert loads(nested(3), max_depth=3) == [[[1]]]
    with pytest.raises(JsonTooDeep):
        loads(nested(4), max_depth=3)


@pytest.mark.parametrize(
    "raw",
    [
        '["' + "[" * 200 + '"]',
        '{"k": "' + "{[" * 200 + '"}',
        '["\\"' + "[" * 200 + '"]',  # an escaped quote does not end the string
        '["\\\\", ' + nested(MAX_DEPTH - 1) + "]",  # an escaped backslash does end it
        '{"' + "[" * 100 + '": 1}',  # brackets in keys
    ],
)
def test_brackets_inside_strings_do_not_count(raw):
    assert loads(raw) == json.loads(raw)


def test_a_string_that_hides_brackets_behind_an_escaped_backslash_is_measured():
    # `"\\"` ends at the second quote, so the brackets after it are real.
    raw = '["\\\\", ' + nested(MAX_DEPTH) + "]"
    with pytest.raises(JsonTooDeep):
        loads(raw)


@pytest.mark.parametrize("raw", ["[[]", "]]]", "[1, 2", "{}}", '{"a": [}', "]" * 100 + "[" * 10])
def test_shallow_broken_documents_are_plain_value_errors(raw):
    with pytest.raises(ValueError) as refused:
        loads(raw)
    assert not isinstance(refused.value, JsonTooDeep)


@pytest.mark.parametrize(
    "raw",
    ["NaN", "[Infinity]", '{"a": -Infinity}', "1e400", "[-1e999]", "1" * 5000],
)
def test_numbers_outside_json_or_outside_a_float_are_refused(raw):
    with pytest.raises(ValueError):
        loads(raw)


def test_large_numbers_that_fit_are_kept():
    assert loads("1e300") == 1e300
    assert loads("9" * 400) == int("9" * 400)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_bytes_are_decoded_like_json_loads_and_measured_after_decoding(encoding):
    shallow = '["\\"[[[", {"é": 1}]'
    assert loads(shallow.encode(encoding)) == json.loads(shallow)
    with pytest.raises(JsonTooDeep):
        loads(nested(MAX_DEPTH + 1).encode(encoding))


@pytest.mark.parametrize("raw", [b"\xff\xfe\xff", b'{"a": "\xff"}', b'"\xed\xa0\x80"'])
def test_undecodable_bytes_are_value_errors(raw):
    with pytest.raises(ValueError):
        loads(raw)


def test_unterminated_strings_full_of_escaped_quotes_are_refused_quickly():
    # Linear scan: a quadratic one would take minutes on this.
    raw = b"[" * (MAX_DEPTH + 1) + b'"' + b'\\"' * 500_000
    with pytest.raises(ValueError):
        loads(raw)
    assert not nesting_depth_exceeds(b'"' + b'\\"' * 500_000 + b"[" * 100, 64)


def test_large_documents_parse_like_json_loads():
    document = [
        {"id": i, "name": f"item [{i}] {{", "tags": ["a", "b", {"deep": [[i]]}], "n": i / 3}
        for i in range(50_000)
    ]
    raw = json.dumps(document)
    assert loads(raw) == document
    assert loads(raw.encode()) == document


def test_many_shallow_brackets_are_not_too_deep():
    raw = "[" + ",".join(["[]"] * 200_000) + "]"
    assert len(loads(raw)) == 200_000


@pytest.mark.parametrize(
    "raw",
    ['"\\ud800"', '{"\\udc00": 1}', '["a", ["\\uDBFF x"]]', '"\\ude00\\ud83d"', '"\ud800"'],
)
def test_lone_surrogates_are_refused_even_as_escapes(raw):
    with pytest.raises(ValueError):
        loads(raw)


def test_surrogate_pairs_and_escaped_backslashes_are_kept():
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert loads('"\\\\ud800"') == "\\ud800"  # a backslash, then the letters


@pytest.mark.parametrize("raw", ["[" * 10000 + "]" * 10000, '{"a":' * 100 + "1" + "}" * 100])
def test_request_log_bodies_too_deep_to_redact_are_not_kept(raw):
    assert bounded_body(raw.encode(), 1 << 20, ()) == TOO_DEEP


def test_request_log_bodies_are_redacted_by_field_name_even_with_nan():
    kept = json.loads(bounded_body(b'{"password": "p", "n": NaN, "ok": [1]}', 1000, ()))
    assert kept["password"] == "[REDACTED]" and kept["ok"] == [1]
