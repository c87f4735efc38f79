"""The request-log writer's row shaping: the faster paths keep what is stored (issue 19)."""

from __future__ import annotations

import json

import pytest

from addons.record import json_text
from addons.state import decode_fields
from models.redaction import REDACTED, redact_fields, redact_pairs, redact_text

VALUES = [
    {"apiHeaders": {"user-agent": "e2e", "x-utf8": "café ✓"}, "duration": 0.001, "n": 7},
    {"header": "caf\udce9"},  # a lone surrogate: a header byte that is not UTF-8
    {"big": 2**70, "small": -(2**63)},  # past orjson's 64 bits
    {1: "a", None: "b"},  # keys that are not strings
    [1.5, 1e-7, 123456789.125, True, None, ""],
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_json_columns_read_back_as_python_json_would_have_written_them(value):
    """orjson where it can, Python's json where orjson refuses: the same value either way."""
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


FIELDS = [
    (b"Content-Type", b"application/json"),
    (b"Set-Cookie", b"sid=1"),
    (b"X-Auth-Token", b"t"),
    (b"x-session-id", b"s"),
    (b"X-API-Key", b"caller-key"),
    (b"X-Echo", b"Bearer s3cret and s3cret"),
    (b"X-Latin1", b"caf\xe9"),
    (b"X-Caf\xe9", b"v"),
    (b"X-Dup", b"first"),
    (b"x-dup", b"last"),
    (b"X-Red", b"RED"),
]


@pytest.mark.parametrize(
    "secrets,also",
    [((), frozenset()), (("s3cret",), frozenset()), (("s3cret", "", "RED"), {"x-api-key"})],
)
def test_header_redaction_in_one_pass_is_the_decode_redact_replace_it_replaces(secrets, also):
    expected = {
        name: redact_text(value, secrets)
        for name, value in redact_pairs(decode_fields(FIELDS), also).items()
    }
    assert redact_fields(FIELDS, secrets, also) == expected
    assert REDACTED in redact_fields(FIELDS, secrets, also)["set-cookie"]
