"""The pool's records and query parsing, in-process (no store needed): secrets never shown in
a record, query defaults, and cursors that refuse anything they were not made as."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from models.pool import PoolProxy, PoolSource
from pool.errors import PoolError
from pool.keys import check_label
from pool.query import decode_cursor, encode_cursor, parse_proxy_query, proxy_order
from pool.records import masked_url, proxy_record, source_record


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:tok3n@lists.example/p.txt?x=1", "https://user:***@lists.example/p.txt?x=1"),
        ("https://ghp_tok3n@lists.example/p.txt", "https://***@lists.example/p.txt"),
        ("https://u%40x:p%3Aw@lists.example:8443/", "https://u%40x:***@lists.example:8443/"),
        ("http://user:tok3n@[2001:db8::1]:8080/l", "http://user:***@[2001:db8::1]:8080/l"),
        ("https://user:tok3n@[2001:db8::1/l", "https://***@[2001:db8::1/l"),  # unsplittable
        ("https://lists.example/p.txt", "https://lists.example/p.txt"),
        (
            "https://lists.example/p.txt?page=2&api_key=k3y&Token=t&flag",
            "https://lists.example/p.txt?page=2&api_key=***&Token=***&flag",
        ),
    ],
    ids=["password", "token-as-user", "encoded", "ipv6", "unsplittable", "none", "query"],
)
def test_a_source_url_never_shows_its_secret(url, shown):
    assert masked_url(url) == shown
    record = source_record(
        PoolSource(url=url, parser_name="plaintext", cron_schedule="* * * * *", is_active=True)
    )
    assert record["url"] == shown and "tok3n" not in json.dumps(record)
    assert list(record)[:8] == [
        "id", "url", "parser_name", "cron_schedule", "default_protocol", "is_active",
        "last_scraped_at", "created_at",
    ]  # fmt: skip


def test_a_proxy_record_says_it_has_credentials_never_which():
    plain = proxy_record(PoolProxy(id="p1", host="203.0.113.1", port=80, protocol="http"))
    assert "has_credentials" not in plain and plain["ip"] == "203.0.113.1"
    for fields in ({"username": "joe"}, {"password_ciphertext": b"x", "password_key_id": "k"}):
        record = proxy_record(
            PoolProxy(id="p2", host="h.test", port=1, protocol="socks5", **fields)
        )
        assert record["has_credentials"] is True and "joe" not in json.dumps(record)


def test_a_key_label_is_a_printable_name():
    assert check_label("  ci runner ") == "ci runner"
    for label in ("", "   ", "x" * 101, "bad\x00label", "tab\tlabel"):
        with pytest.raises(PoolError, match="label"):
            check_label(label)


def test_query_defaults_and_sort_directions():
    query = parse_proxy_query({"country": "de", "unknown": "ignored"})
    assert (query.sort, query.descending, query.limit, query.country) == ("score", True, 50, "DE")
    assert parse_proxy_query({"sort": "latency"}).descending is False, "fastest first"
    assert parse_proxy_query({"sort": "uptime"}).descending is True
    assert parse_proxy_query({"sort": "last_checked"}).descending is True, "newest first"
    assert parse_proxy_query({"sort": "latency", "order": "desc"}).descending is True


def test_a_cursor_is_refused_unless_made_for_this_order_with_fitting_values():
    order = proxy_order(parse_proxy_query({"sort": "last_checked"}))
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    cursor = encode_cursor("last_checked_at:desc,id:desc", [moment, "abc"])
    assert decode_cursor(cursor, order) == [moment, "abc"]
    assert decode_cursor(encode_cursor("last_checked_at:desc,id:desc", [None, "x"]), order)

    def raw(body) -> str:
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")

    score_order = proxy_order(parse_proxy_query({}))
    bad = [
        (cursor, score_order),  # made for another sort
        (raw({"s": "score:desc,id:desc", "v": ["high", "x"]}), score_order),
        (raw({"s": "score:desc,id:desc", "v": [True, "x"]}), score_order),
        (raw({"s": "score:desc,id:desc", "v": [0.5, None]}), score_order),
        (raw({"s": "score:desc,id:desc", "v": [0.5, "x\x00"]}), score_order),
        (raw({"s": "score:desc,id:desc", "v": [0.5]}), score_order),
        (raw({"s": "score:desc,id:desc", "v": [None, "x"]}), score_order),  # score is never NULL
        (raw({"s": "last_checked_at:desc,id:desc", "v": [{"t": "2026-01-02"}, "x"]}), order),
        (raw({"s": "last_checked_at:desc,id:desc", "v": [{"t": 5}, "x"]}), order),
        (raw([1, 2]), score_order),
        (raw({"s": "score:desc,id:desc", "v": json.loads("[" * 300 + "]" * 300)}), score_order),
        ("x" * 2000, score_order),
        ("!!", score_order),
        ("AAAA", score_order),
    ]  # fmt: skip
    for text, columns in bad:
        with pytest.raises(PoolError, match="cursor") as refused:
            decode_cursor(text, columns)
        assert refused.value.status == 422 and refused.value.details["field"] == "cursor", text
