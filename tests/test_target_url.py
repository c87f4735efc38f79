"""Path joining: whatever the caller sends, the URL stays under the target's base path."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from models.target_url import (
    PathEscapeError,
    canonical_path,
    join_target_url,
    path_readings,
    without_parameters,
)

BASE = urlsplit("https://api.example.test/v2/")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "/"),
        ("users", "/users"),
        ("users/7/", "/users/7/"),
        ("//users///7", "/users/7"),
        ("%75sers", "/users"),
        ("caf%C3%A9", "/caf%C3%A9"),
        ("a%20b", "/a%20b"),
        ("..a/b..", "/..a/b.."),
        ("v1:batch", "/v1:batch"),
        ("a;b/c", "/a;b/c"),
        ("a%3Bb/c", "/a;b/c"),
        ("...;x", "/...;x"),
        (";x/..a", "/;x/..a"),
    ],
)
def test_canonical_paths(raw, expected):
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        "users/../../admin",
        "./users",
        "%2e%2e/admin",
        "%2E%2E/admin",
        "%252e%252e/admin",
        "users%2f..%2fadmin",
        "users%2Fadmin",
        "a%5c..%5cb",
        "a%00b",
        "%25252525252e",
        "%ff%fe",
    ],
)
def test_escapes_are_refused(raw):
    with pytest.raises(PathEscapeError):
        canonical_path(raw)


def test_joined_url_keeps_base_path_and_query():
    url = join_target_url(BASE, canonical_path("//customers/7"), "limit=5&x=%2F")
    assert url == "https://api.example.test/v2/customers/7?limit=5&x=%2F"
    assert join_target_url(urlsplit("http://127.0.0.1:8000"), "/", "") == "http://127.0.0.1:8000/"


def _dot_segment_spellings() -> list[str]:
    """Every spelling of a dot segment followed by `;` parameters: literal, %2e/%2E, %3b/%3B,
    double-encoded, with and without text after the `;`."""
    dots = {
        "..": ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "%252E."],
        ".": [".", "%2e", "%2E", "%252e"],
    }
    semicolons = [";", "%3b", "%3B", "%253b", "%253B"]
    spellings = []
    for variants in dots.values():
        for dot in variants:
            for semicolon in semicolons:
                for tail in ("", "x", "jsessionid=1", ";"):
                    spellings.append(f"{dot}{semicolon}{tail}")
    return spellings


DOT_SEGMENTS_WITH_PARAMETERS = _dot_segment_spellings()


@pytest.mark.parametrize("segment", DOT_SEGMENTS_WITH_PARAMETERS)
@pytest.mark.parametrize("where", ["x/{}/admin", "{}/admin", "x/{}", "x/{}/"])
def test_dot_segments_with_path_parameters_are_refused(segment, where):
    with pytest.raises(PathEscapeError, match="dot segment"):
        canonical_path(where.format(segment))


@pytest.mark.parametrize("raw", ["caf\udcff", "\udcc3\udca9\udcff", "\udc80x", "a/\udcff/b"])
def test_raw_bytes_that_are_not_utf8_are_refused(raw):
    """mitmproxy hands non-UTF-8 bytes of the request line over as lone surrogates."""
    with pytest.raises(PathEscapeError, match="UTF-8"):
        canonical_path(raw)


@pytest.mark.parametrize(
    ("path", "stripped"),
    [
        ("/sec;x/ret", "/sec/ret"),
        ("/secret;x", "/secret"),
        ("/;x/secret", "/secret"),
        ("/a;b;c/d;e/", "/a/d/"),
        ("/;x/", "/"),
    ],
)
def test_path_parameters_are_removed_per_segment(path, stripped):
    assert without_parameters(path) == stripped
    assert path_readings(path) == (path, stripped)


def test_a_path_without_parameters_has_one_reading():
    assert path_readings("/v1/users") == ("/v1/users",)


@pytest.mark.parametrize(
    ("query", "sent"),
    [
        ("a=1&b=%2F", "a=1&b=%2F"),
        ("q=\udcff", "q=%FF"),
        ("q=caf\u00e9", "q=caf%C3%A9"),
        ("q=\udcc3\udca9\udcff&x=\x7f", "q=%C3%A9%FF&x=%7F"),
        ("q=a b\t", "q=a%20b%09"),
    ],
)
def test_the_forwarded_query_is_ascii_with_raw_bytes_kept(query, sent):
    """Raw bytes in the caller's query reach the target percent-encoded, byte for byte."""
    assert join_target_url(BASE, "/x", query) == f"https://api.example.test/v2/x?{sent}"
