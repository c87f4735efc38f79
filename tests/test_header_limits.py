"""Request heads above the configured limits answer 431 before they are buffered or forwarded.

Against a real `run_proxy.py`, over raw sockets: a head too large in total (one
huge field, or very many small ones, whether the head is still arriving or
complete), too many fields, one field too large; on the Proxy API and the
Async API, authenticated or not. The upstream sees nothing and the data
plane's memory stays bounded.
"""

from __future__ import annotations

import itertools

import pytest

from tests.proxy_support import (
    CALLER_KEY,
    Setup,
    distinct_free_ports,
    launch_proxy,
    served_setup,
    start_proxy,
    wait_started,
)
from tests.raw_http import exchange, request, rss_kib
from tests.support import Api

KIB, MIB = 1024, 1024 * 1024
_marks = itertools.count(1)
PREFIXES = pytest.mark.parametrize("prefix", ["api", "async"])


@pytest.fixture(scope="module")
def setup(admin_server, owner, upstream, gateway) -> Setup:
    """One proxy for every test here (not one each: 19 tests, about half a second of
    set-up apiece): each tells its requests apart by a marker of its own, and none counts
    anything per proxy."""
    return served_setup(Api(admin_server.base_url, owner.token), upstream, gateway)


def mark() -> str:
    return f"hdr-{next(_marks)}"


def reached(upstream, marker: str) -> bool:
    return any(marker in path for path in upstream.started)


def assert_431(answer, option: str) -> None:
    assert answer.status == 431, answer.raw[:300]
    body = answer.json()
    assert body["error"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    assert body["error"]["details"]["option"] == option
    assert body["message"] == body["error"]["message"]
    assert answer.header("requestrocket-proxy-code") == "proxy-access-denied"
    assert answer.header("portcullis-request-id")
    assert answer.header("content-type") == "application/json"


def head(prefix: str, proxy_id: str, marker: str, fields) -> bytes:
    target = f"/{prefix}/{proxy_id}/{marker}".encode()
    return request(b"GET", target, [(b"Host", b"gw"), (b"X-API-Key", CALLER_KEY.encode()), *fields])


def many_fields(count: int) -> list[tuple[bytes, bytes]]:
    return [(b"X-F%d" % i, b"v") for i in range(count)]


@PREFIXES
@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ([(b"X-Big", b"a" * (32 * MIB))], "portcullis_max_header_bytes"),
        ([(b"X-Big", b"a" * (8 * MIB))], "portcullis_max_header_bytes"),
        (many_fields(100_000), "portcullis_max_header_bytes"),
        ([(b"X-Big", b"a" * (70 * KIB))], "portcullis_max_header_bytes"),
        ([(b"X-A%d" % i, b"a" * (15 * KIB)) for i in range(5)], "portcullis_max_header_bytes"),
        (many_fields(101), "portcullis_max_header_count"),
        ([(b"X-Big", b"a" * (16 * KIB + 1))], "portcullis_max_header_field_bytes"),
    ],
    ids=["32MB", "8MB", "100k-fields", "70KB", "5x15KB", "101-fields", "17KB-field"],
)
def test_oversized_heads_answer_431_and_reach_nothing(
    setup, gateway, upstream, prefix, fields, option
):
    marker = mark()
    answer = exchange(gateway.base_url, head(prefix, setup.id, marker, fields))
    assert_431(answer, option)
    assert not reached(upstream, marker)


@PREFIXES
def test_heads_within_the_limits_are_served(setup, gateway, upstream, prefix):
    marker = mark()
    fields = [*many_fields(90), (b"X-Big", b"a" * (16 * KIB - 10))]
    answer = exchange(gateway.base_url, head(prefix, setup.id, marker, fields))
    assert answer.status == (200 if prefix == "api" else 202), answer.raw[:300]
    assert upstream.wait_started(f"/base/{marker}")


def test_a_head_sent_slowly_is_refused_once_it_passes_the_limit(setup, gateway, upstream):
    """The head never completes: the gateway answers as soon as the limit is passed."""
    marker = mark()
    start = f"GET /api/{setup.id}/{marker} HTTP/1.1\r\nX-API-Key: {CALLER_KEY}\r\n".encode()
    pieces = itertools.chain([start], itertools.repeat(b"X-Pad: " + b"p" * 1000 + b"\r\n", 2000))
    answer = exchange(gateway.base_url, pieces)
    assert_431(answer, "portcullis_max_header_bytes")
    assert not reached(upstream, marker)


def test_memory_stays_bounded_under_huge_heads(setup, gateway, upstream):
    before = rss_kib(gateway.process.pid)
    for fields in ([(b"X-Big", b"a" * (32 * MIB))], many_fields(100_000)):
        for prefix in ("api", "async"):
            for _ in range(3):
                assert (
                    exchange(gateway.base_url, head(prefix, setup.id, mark(), fields)).status == 431
                )
    growth_mib = (rss_kib(gateway.process.pid) - before) / KIB
    print(f"data plane RSS {before / KIB:.0f} MiB, grew by {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"data plane grew by {growth_mib:.0f} MiB"


BAD_OPTIONS = (
    "portcullis_max_header_bytes=0",
    "portcullis_max_header_count=-1",
    "portcullis_max_header_field_bytes=100000",  # above the head limit
)


def test_limits_are_options_and_are_validated(admin_server, setup, upstream, tmp_path):
    # The data planes given a bad option are launched first and waited for last: each takes
    # a process start to refuse, and those start-ups overlap the good one's (ports apart, so
    # none can take another's).
    ports = distinct_free_ports(len(BAD_OPTIONS) + 1)
    refused = [
        launch_proxy(admin_server, tmp_path / bad.split("=")[0], ("--set", bad), port=port)
        for bad, port in zip(BAD_OPTIONS, ports, strict=False)
    ]
    try:
        small = start_proxy(
            admin_server,
            tmp_path / "small",
            "--set",
            "portcullis_max_header_bytes=4096",
            "--set",
            "portcullis_max_header_count=10",
            "--set",
            "portcullis_max_header_field_bytes=1024",
            port=ports[-1],
        )
        try:
            marker = mark()
            ok = exchange(small.base_url, head("api", setup.id, marker, many_fields(5)))
            assert ok.status == 200, ok.raw[:300]
            cases = [
                ([(b"X-Big", b"a" * 5000)], "portcullis_max_header_bytes"),
                (many_fields(11), "portcullis_max_header_count"),
                ([(b"X-Big", b"a" * 1100)], "portcullis_max_header_field_bytes"),
            ]
            for fields, option in cases:
                marker = mark()
                assert_431(exchange(small.base_url, head("api", setup.id, marker, fields)), option)
                assert not reached(upstream, marker)
        finally:
            small.stop()
        for bad, proxy in zip(BAD_OPTIONS, refused, strict=True):
            with pytest.raises(RuntimeError) as failed:
                wait_started(proxy)
            assert bad.split("=")[0] in str(failed.value)
    finally:
        for proxy in refused:
            proxy.stop()
