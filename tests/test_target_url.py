"""Path joining: whatever the caller sends, the URL stays under the target's base path."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from models.target_url import PathEscapeError, canonical_path, join_target_url

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
