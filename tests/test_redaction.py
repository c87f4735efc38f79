"""What the request log keeps of a body: bounded, redacted, and storable in any store."""

from __future__ import annotations

import pytest

from models.redaction import REDACTED, bounded_body


@pytest.mark.parametrize(
    "raw", [b"\x00", b"a\x00b", b"\xff\xfe\x00binary", b'{"k": "v\\u0000"}', b"\x00" * 20]
)
def test_a_body_with_nul_is_kept_without_nul(raw):
    kept = bounded_body(raw, 16, ())
    assert kept and "\x00" not in kept


def test_secret_fields_and_values_are_redacted():
    kept = bounded_body(b'{"password": "p", "note": "has sk-live-1"}', 1000, ("sk-live-1",))
    assert "sk-live-1" not in kept and '"p"' not in kept and REDACTED in kept
