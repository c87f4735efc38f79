"""The filter step's body handling (addons/filters.py), without a process: decoding,
JSON checks, size limits and what counts as an answer to filter."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from addons.filters import Refusal, TooLarge, filter_body, filters_apply
from models.json_paths import parse_paths
from models.payload_filter import FilterStep

DOC = {"id": 1, "card": {"number": "4111", "brand": "visa"}}
RAW = json.dumps(DOC).encode()
STEPS = (FilterStep("filt_1", "target", "destroy", parse_paths(["card.number"])),)
FILTERED = {"id": 1, "card": {"brand": "visa"}}


def deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (RAW, None),
        (RAW, "identity"),
        (gzip.compress(RAW, mtime=0), "gzip"),
        (gzip.compress(RAW, mtime=0), "X-Gzip"),
        (zlib.compress(RAW), "deflate"),
        (deflate_raw(RAW), "deflate"),
        (
            gzip.compress(RAW[:10], mtime=0) + gzip.compress(RAW[10:], mtime=0),
            "gzip",
        ),  # two gzip members
    ],
    ids=["plain", "identity", "gzip", "x-gzip", "zlib", "raw-deflate", "two-gzip-members"],
)
def test_encoded_bodies_are_decoded_then_filtered(body, encoding):
    out = filter_body(STEPS, body, encoding, 10_000)
    assert isinstance(out, bytes) and json.loads(out) == FILTERED


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_unreadable_encodings_are_refused(encoding):
    out = filter_body(STEPS, RAW, encoding, 10_000)
    assert isinstance(out, Refusal) and (out.status, out.code) == (
        502,
        "RESPONSE_ENCODING_UNSUPPORTED",
    )


@pytest.mark.parametrize(
    "body",
    [gzip.compress(RAW, mtime=0)[:-12], b"\x1f\x8bnot gzip at all"],
    ids=["truncated", "corrupt"],
)
def test_corrupt_or_truncated_gzip_is_refused(body):
    out = filter_body(STEPS, body, "gzip", 10_000)
    assert isinstance(out, Refusal) and out.code == "RESPONSE_ENCODING_INVALID"


def test_decoding_stops_at_the_limit():
    bomb = gzip.compress(b'{"pad": "' + b"0" * 1_000_000 + b'"}')
    assert filter_body(STEPS, bomb, "gzip", 4096) == TooLarge(4096)
    # The filtered output is held to the limit too.
    assert filter_body(STEPS, RAW, None, 20) == TooLarge(20)


@pytest.mark.parametrize("body", [b"<html>", b"{", b"\xff\xfe", b"NaN", b"[" * 100 + b"]" * 100])
def test_non_json_is_refused_with_422(body):
    out = filter_body(STEPS, body, None, 10_000)
    assert isinstance(out, Refusal) and (out.status, out.code) == (422, "RESPONSE_NOT_JSON")


@pytest.mark.parametrize(
    ("steps", "method", "status", "applies"),
    [
        (STEPS, "GET", 200, True),
        (STEPS, "POST", 201, True),
        (STEPS, "GET", 299, True),
        ((), "GET", 200, False),
        (STEPS, "HEAD", 200, False),
        (STEPS, "GET", 204, False),
        (STEPS, "GET", 205, False),
        (STEPS, "GET", 301, False),
        (STEPS, "GET", 404, False),
        (STEPS, "GET", 500, False),
    ],
)
def test_filters_apply_to_2xx_answers_with_a_body_only(steps, method, status, applies):
    assert filters_apply(steps, method, status) is applies
