"""The lean upstream client (addons/lean_upstream.py) against aiohttp, on a hostile target.

The same corpus of requests and exact-byte answers (tests/hostile_target.py) goes through
`UpstreamClient` built with each client, in one process and one event loop: the outcome (the
answer, or the error's class and `.reached`) must be the same, and so must the bytes the target
received. Error messages may differ in wording only: both say "the target's answer was broken
off or invalid: ..." with their parser's reason (llhttp's in both, aiohttp adds its own for a
few), never the URL.

Where aiohttp is lenient in a way that lets an answer pass that a strict parser refuses (a
header name with a space before the colon, obs-fold, bare LF, an unasked 101), the lean client
refuses, and the tests say so. The last test runs the gateway (a real mitmdump) against the
hostile target: smuggling-shaped answers become JSON 502 and their connection is not reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import pytest
import requests

from addons.ssrf import TargetGuard, TargetRefused, parse_allowances
from addons.upstream import Timeouts, UpstreamClient, UpstreamRequest
from addons.upstream_errors import TargetTimeout, TargetUnreachable
from tests.hostile_target import HostileTarget, ThreadedHostileTarget
from tests.pool_proxies import tls_files
from tests.proxy_support import CALLER_KEY, Setup, start_proxy, wait_until_served
from tests.support import Api

CLIENTS = ("aiohttp", "lean")
TIMEOUTS = Timeouts(connect_s=5, read_s=5)
BROKEN = "the target's answer was broken off or invalid: "

# Answers both clients treat alike: passed on (status, reason, headers, body) or refused.
SAME = [
    "ok",
    "empty",
    "chunked",
    "trailers",
    "continue",
    "early-hints",
    "204-plain",
    "many-headers",
    "http10-keepalive",
    "http10-no-length",
    "no-length",
    "connection-close",
    "hop-headers",
    "gzip",
    "reason-utf8",
    "no-reason",
    "te-identity",
    "te-gzip-chunked",
    "te-chunked-gzip",
    "extra-bytes",
    "big",
    # refused by both
    "bad-chunk-size",
    "chunk-overflow",
    "chunk-missing-crlf",
    "dup-cl-same",
    "dup-cl-differ",
    "cl-list",
    "cl-te",
    "cl-negative",
    "cl-plus",
    "mid-body",
    "mid-chunk",
    "mid-head",
    "before-head",
    "huge-header",
    "too-many-headers",
    "nul-in-value",
    "cr-in-value",
    "status-garbage",
    "not-http",
]
REFUSED_BY_BOTH = SAME[SAME.index("bad-chunk-size") :]
# aiohttp's response parser runs llhttp with lenient headers and optional CR (aiohttp's
# _http_parser.pyx) and passes a 101 on: each can desynchronise what the caller and the target
# think the message is. The lean client refuses them.
LENIENT_IN_AIOHTTP = ["te-space", "obs-fold", "lf-only", "switching"]
# aiohttp sends an idempotent request again once when the connection closes before a whole
# head, even on a new connection and after part of the head came (aiohttp/client.py,
# retry_persistent_connection). The lean client retries only a stale pooled connection that
# closed before the first byte of the answer (test_a_stale_pooled_connection_...).
RETRIED_BY_AIOHTTP = {"mid-head", "before-head"}


def run(coroutine):
    return asyncio.run(coroutine)


@contextlib.asynccontextmanager
async def clients() -> AsyncIterator[dict[str, UpstreamClient]]:
    guard = TargetGuard(parse_allowances("127.0.0.1"))
    made = {name: UpstreamClient(guard, TIMEOUTS, client=name) for name in CLIENTS}
    try:
        yield made
    finally:
        for client in made.values():
            await client.close()


async def outcome(
    client: UpstreamClient,
    port: int,
    path: str,
    method: str = "GET",
    body=None,
    headers=(),
    host: str = "127.0.0.1",
    scheme: str = "http",
) -> tuple:
    request = UpstreamRequest(method, f"{scheme}://{host}:{port}{path}", tuple(headers))
    try:
        answer = await client.send(request, body, 8 * 1024 * 1024)
    except (TargetUnreachable, TargetTimeout) as exc:
        return ("refused", type(exc).__name__, exc.reached, str(exc))
    return ("answer", answer.status, answer.reason, answer.headers, answer.body)


async def both(path: str, method: str = "GET", body_of=lambda: None, headers=()) -> dict:
    """`path` through each client, each against a target of its own: outcome, received."""
    results = {}
    for name in CLIENTS:
        async with HostileTarget() as target, clients() as made:
            got = await outcome(made[name], target.port, path, method, body_of(), headers)
            port = str(target.port).encode()
            results[name] = (got, [r.raw.replace(port, b"PORT") for r in target.received])
    return results


def without_message(got: tuple) -> tuple:
    return got[:3] if got[0] == "refused" else got


@pytest.mark.parametrize("scenario", SAME)
def test_both_clients_give_the_same_outcome_and_send_the_same_bytes(scenario):
    method = "HEAD" if scenario.startswith("head") else "GET"
    results = run(both(f"/{scenario}?q=%2Fa%20b", method, headers=[("X-Trace", "t1")]))
    (lean, lean_sent), (aio, aio_sent) = results["lean"], results["aiohttp"]
    assert without_message(lean) == without_message(aio)
    assert aio_sent == lean_sent * (2 if scenario in RETRIED_BY_AIOHTTP else 1)
    if scenario in REFUSED_BY_BOTH:
        assert lean[:3] == ("refused", "TargetUnreachable", True)
        assert lean[3].startswith(BROKEN) and "127.0.0.1" not in lean[3]


@pytest.mark.parametrize("scenario", ["head-cl", "head-chunked"])
def test_head_answers_have_no_body_whatever_their_headers_say(scenario):
    results = run(both(f"/{scenario}", "HEAD"))
    assert results["lean"] == results["aiohttp"]
    assert results["lean"][0][0] == "answer" and results["lean"][0][4] == b""


@pytest.mark.parametrize("scenario", LENIENT_IN_AIOHTTP)
def test_the_lean_client_refuses_what_aiohttp_lets_through(scenario):
    results = run(both(f"/{scenario}"))
    assert results["aiohttp"][0][0] == "answer"  # aiohttp's leniency, the reason for this test
    lean = results["lean"][0]
    assert lean[:3] == ("refused", "TargetUnreachable", True), lean
    assert lean[3].startswith(BROKEN)
    assert results["lean"][1] == results["aiohttp"][1]  # the same request went out


@pytest.mark.parametrize(
    ("scenario", "method"), [("204-body", "GET"), ("304-body", "GET"), ("ok", "HEAD")]
)
def test_a_bodyless_answer_followed_by_a_body_is_passed_on_bodyless_and_its_connection_dropped(
    scenario, method
):
    """HEAD, 204 and 304 answers have no body (RFC 9112 §6.3): the lean client passes the head
    on and never reuses the connection, whose next bytes are the target's stray body. aiohttp
    instead reads those bytes, when they come in the same read, as a second status line and
    refuses the answer (when they come later it passes the head on too); neither passes the
    stray bytes to anyone."""

    async def exchange():
        async with HostileTarget() as target, clients() as made:
            first = await outcome(made["lean"], target.port, f"/{scenario}", method)
            second = await outcome(made["lean"], target.port, "/ok")
            aio = await outcome(made["aiohttp"], target.port, f"/{scenario}", method)
            return first, second, aio, [r.connection for r in target.received]

    first, second, aio, connections = run(exchange())
    assert first[0] == "answer" and first[4] == b""
    assert second[0] == "answer" and second[4] == b"hello"
    assert connections[0] != connections[1]  # not reused
    assert aio[:3] == ("refused", "TargetUnreachable", True)


async def _streamed(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


REQUESTS = {
    "get": ("GET", lambda: None, [("Accept", "*/*"), ("X-B", "2"), ("x-a", "1")]),
    "get-empty-bytes": ("GET", lambda: b"", []),
    "head": ("HEAD", lambda: None, []),
    "options": ("OPTIONS", lambda: None, []),
    "delete": ("DELETE", lambda: None, []),
    "post-bytes": ("POST", lambda: b'{"a": 1}', [("Content-Type", "application/json")]),
    "post-none": ("POST", lambda: None, []),
    "post-empty-bytes": ("POST", lambda: b"", []),
    "put-bytes": ("PUT", lambda: b"x" * 70_000, []),
    "patch-streamed-chunked": ("PATCH", lambda: _streamed([b"ab", b"", b"cdef"]), []),
    "post-streamed-with-length": (
        "POST",
        lambda: _streamed([b"abc", b"def"]),
        [("Content-Length", "6"), ("X-Z", "z")],
    ),
    "non-ascii-value": ("GET", lambda: None, [("X-Name", "Zoë")]),
    "connection-headers-dropped": (
        "GET",
        lambda: None,
        [("Connection", "x-hop"), ("X-Hop", "1"), ("Keep-Alive", "5"), ("TE", "trailers")],
    ),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_target_receives_the_same_bytes_from_both_clients(name):
    """Request line, Host, header order and case, framing (Content-Length: 0 where aiohttp
    sends it, chunked for a streamed body of unknown length) and body: byte for byte."""
    method, body_of, headers = REQUESTS[name]
    results = run(both("/p%C3%A4th;x=1/ok?a=1&b=%20&a=2", method, body_of, headers))
    assert results["lean"][1] == results["aiohttp"][1]
    if method != "HEAD":  # /ok sends a body after a HEAD's head: see the bodyless test
        assert results["lean"][0] == results["aiohttp"][0]
    sent = results["lean"][1][0]
    assert sent.startswith(f"{method} /p%C3%A4th;x=1/ok?a=1&b=%20&a=2 HTTP/1.1\r\n".encode())
    assert b"\r\nHost: 127.0.0.1:" in sent


def test_a_streamed_body_that_breaks_off_fails_alike():
    async def breaking() -> AsyncIterator[bytes]:
        yield b"abc"
        raise RuntimeError("the caller left")

    results = run(both("/ok", "POST", breaking))
    assert results["lean"][0][:3] == results["aiohttp"][0][:3]
    assert results["lean"][0][:3] == ("refused", "TargetUnreachable", True)
    assert results["lean"][1] == results["aiohttp"][1] == []  # never a whole request


def test_an_ipv6_literal_target_gets_the_same_request():
    async def exchange(name: str):
        guard = TargetGuard(parse_allowances("::1"))
        client = UpstreamClient(guard, TIMEOUTS, client=name)
        try:
            async with HostileTarget(host="::1") as target:
                got = await outcome(client, target.port, "/ok", host="[::1]")
                port = str(target.port).encode()
                return got, [r.raw.replace(port, b"PORT") for r in target.received]
        finally:
            await client.close()

    lean, aio = run(exchange("lean")), run(exchange("aiohttp"))
    assert lean == aio
    assert lean[0][:2] == ("answer", 200)
    assert b"\r\nHost: [::1]:PORT\r\n" in lean[1][0]


def test_header_injection_is_refused_before_anything_is_sent():
    async def attempt(name: str):
        async with HostileTarget() as target, clients() as made:
            request = UpstreamRequest(
                "GET", f"http://127.0.0.1:{target.port}/ok", (("X-A", "a\r\nX-Evil: 1"),)
            )
            with pytest.raises(ValueError, match="Forbidden control character"):
                await made[name].send(request, None, 1024)
            return target.received

    for name in CLIENTS:
        assert run(attempt(name)) == []


def test_connections_are_reused_alike():
    """Kept: a complete answer framed by length or chunks. Dropped: Connection: close, a body
    read to the close, an answer refused or left unread."""
    sequence = ["ok", "chunked", "ok", "connection-close", "ok", "no-length", "ok", "mid-body"]
    sequence += ["ok", "http10-keepalive", "ok"]

    async def connections(name: str) -> list[int]:
        async with HostileTarget() as target, clients() as made:
            for path in sequence:
                await outcome(made[name], target.port, f"/{path}")
            return [r.connection for r in target.received]

    lean, aio = run(connections("lean")), run(connections("aiohttp"))
    assert lean == aio
    assert lean[:3] == [1, 1, 1] and lean[4] != lean[3]  # reused, then not after a close


async def _until(condition, seconds: float = 5) -> None:
    """Let the loop run until `condition()` holds (the client saw the target's close)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_the_lean_pool_drops_a_connection_its_target_closed_while_idle():
    """A pooled connection the target closes leaves the pool at once (connection_lost), so a
    POST, which is never retried, goes on a new connection and succeeds."""

    async def exchange():
        async with HostileTarget() as target, clients() as made:
            lean = made["lean"]
            await outcome(lean, target.port, "/ok-then-close")
            await _until(lambda: not any(lean._lean._idle.values()))
            got = await outcome(lean, target.port, "/ok", "POST", b"x")
            return got, [r.connection for r in target.received]

    got, connections = run(exchange())
    assert got[0] == "answer" and got[4] == b"hello"
    assert connections == [1, 2]


def test_the_lean_pool_keeps_to_its_connection_cap_by_closing_idle_ones():
    async def exchange():
        guard = TargetGuard(parse_allowances("127.0.0.1"))
        client = UpstreamClient(guard, TIMEOUTS, max_connections=1, client="lean")
        try:
            async with HostileTarget() as first, HostileTarget() as second:
                answers = [
                    await outcome(client, first.port, "/ok"),
                    await outcome(client, second.port, "/ok"),  # the idle one makes room
                    await outcome(client, first.port, "/ok"),
                ]
                return answers, [r.connection for r in first.received]
        finally:
            await client.close()

    answers, connections = run(exchange())
    assert [a[:2] for a in answers] == [("answer", 200)] * 3
    assert connections == [1, 2]  # the first target's idle connection was closed for the cap


def test_concurrent_requests_beyond_the_cap_wait_for_a_free_connection():
    async def burst(name: str) -> tuple[list[tuple], set[int]]:
        guard = TargetGuard(parse_allowances("127.0.0.1"))
        client = UpstreamClient(guard, TIMEOUTS, max_connections=5, client=name)
        try:
            async with HostileTarget() as target:
                paths = ["/ok", "/big", "/chunked"] * 20
                answers = await asyncio.gather(
                    *(outcome(client, target.port, path) for path in paths)
                )
                return answers, {r.connection for r in target.received}
        finally:
            await client.close()

    for name in CLIENTS:
        answers, connections = run(burst(name))
        assert [a[:2] for a in answers] == [("answer", 200)] * 60, name
        assert len(connections) <= 5, name


def test_an_unread_answer_closes_its_connection():
    async def exchange(name: str) -> list[int]:
        async with HostileTarget() as target, clients() as made:
            request = UpstreamRequest("GET", f"http://127.0.0.1:{target.port}/big", ())
            opened = await made[name].open(request, None)
            opened.close()  # the body left unread
            await outcome(made[name], target.port, "/ok")
            return [r.connection for r in target.received]

    for name in CLIENTS:
        first, second = run(exchange(name))
        assert first != second, name


@pytest.mark.parametrize(
    ("method", "body", "retried"),
    [("GET", None, True), ("PUT", b"x", True), ("POST", b"x", False)],
)
def test_a_stale_pooled_connection_is_retried_once_only_for_idempotent_requests(
    method, body, retried
):
    """The target answered on a connection and closes it unanswered at the next request:
    GET/PUT go again on a new connection (as aiohttp does), POST fails, never sent twice."""

    async def exchange(name: str):
        async with HostileTarget() as target, clients() as made:
            await outcome(made[name], target.port, "/stale")
            got = await outcome(made[name], target.port, "/ok", method, body)
            return got, len(target.received)

    for name in CLIENTS:
        got, received = run(exchange(name))
        if retried:
            assert got[0] == "answer" and received == 3, name
        else:
            assert got[:3] == ("refused", "TargetUnreachable", True), name
            assert received == 2, name


def test_a_silent_target_times_out_alike():
    async def exchange(name: str, path: str, streamed: bool):
        guard = TargetGuard(parse_allowances("127.0.0.1"))
        client = UpstreamClient(guard, Timeouts(connect_s=5, read_s=0.3), client=name)
        try:
            async with HostileTarget() as target:
                request = UpstreamRequest("GET", f"http://127.0.0.1:{target.port}{path}", ())
                opened = await client.open(request, None)
                try:
                    async for _ in opened.chunks():
                        pass
                finally:
                    opened.close()
        finally:
            await client.close()

    for name in CLIENTS:
        for path in ("/silent", "/stall-body"):
            with pytest.raises(TargetTimeout, match=r"did not answer within 0.3s"):
                run(exchange(name, path, path == "/stall-body"))


def test_a_target_that_never_completes_the_tls_handshake_is_a_connect_timeout():
    """The handshake counts as connecting: a plain listener that never answers a ClientHello."""

    async def attempt(name: str) -> tuple:
        guard = TargetGuard(parse_allowances("127.0.0.1"))
        client = UpstreamClient(guard, Timeouts(connect_s=0.3, read_s=5), client=name)
        try:
            async with HostileTarget() as target:
                return await outcome(client, target.port, "/ok", scheme="https")
        finally:
            await client.close()

    for name in CLIENTS:
        assert run(attempt(name)) == (
            "refused",
            "TargetTimeout",
            True,
            "the target did not accept a connection within 0.3s",
        ), name


def test_refused_connections_and_refused_addresses_fail_alike():
    async def attempt(name: str, url: str, allowed: str):
        guard = TargetGuard(parse_allowances(allowed))
        client = UpstreamClient(guard, TIMEOUTS, client=name)
        try:
            await client.send(UpstreamRequest("GET", url, ()), None, 1024)
        finally:
            await client.close()

    async def closed_port() -> int:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return port

    port = run(closed_port())
    for name in CLIENTS:
        with pytest.raises(TargetUnreachable, match="could not connect to the target") as caught:
            run(attempt(name, f"http://127.0.0.1:{port}/", "127.0.0.1"))
        assert not caught.value.reached
        with pytest.raises(TargetRefused):
            run(attempt(name, f"http://127.0.0.1:{port}/", ""))
        with pytest.raises(TargetRefused):
            run(attempt(name, f"http://localhost:{port}/", ""))


def test_https_targets_are_verified_alike_by_name_with_sni(tmp_path):
    """TLS with the client's context: the certificate (for 127.0.0.1 only) passes for the IP
    literal (sent without SNI) and fails for the name `localhost` (SNI `localhost`, checked
    against the name, not the address it was connected to), and fails without the CA."""
    ca, cert, key = tls_files(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_context.sni_callback = lambda _socket, name, _context: names.append(name)
    trusting = ssl.create_default_context(cafile=str(ca))

    async def attempt(name: str, host: str, context) -> tuple:
        guard = TargetGuard(parse_allowances("127.0.0.1,::1"))
        client = UpstreamClient(guard, TIMEOUTS, context, client=name)
        try:
            async with HostileTarget(server_context) as target:
                return await outcome(client, target.port, "/ok", host=host, scheme="https")
        finally:
            await client.close()

    for name in CLIENTS:
        names.clear()
        assert run(attempt(name, "127.0.0.1", trusting))[:2] == ("answer", 200)
        assert names == [None]
        refused = run(attempt(name, "localhost", trusting))
        assert refused[:3] == ("refused", "TargetUnreachable", False), refused
        assert refused[3].startswith("could not connect to the target")
        assert "localhost" in names
        assert run(attempt(name, "127.0.0.1", True))[:3] == ("refused", "TargetUnreachable", False)


@pytest.fixture(scope="module")
def hostile():
    with ThreadedHostileTarget() as target:
        yield target


@pytest.mark.parametrize("scenario", ["cl-te", "dup-cl-differ", "dup-cl-same", "obs-fold"])
def test_the_gateway_answers_smuggling_shaped_answers_with_json_502(
    admin_server, owner, gateway, hostile, scenario
):
    setup = Setup(Api(admin_server.base_url, owner.token), hostile)
    auth = {"X-API-Key": CALLER_KEY}
    wait_until_served(gateway, f"/api/{setup.id}/ok", auth)
    before = len(hostile.received)
    with requests.Session() as caller:
        refused = caller.get(f"{gateway.base_url}/api/{setup.id}/{scenario}", headers=auth)
        after = caller.get(f"{gateway.base_url}/api/{setup.id}/ok", headers=auth)
    assert refused.status_code == 502, refused.text
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["error"]["code"] == "TARGET_UNREACHABLE"
    assert refused.json()["error"]["message"].startswith(BROKEN)
    assert refused.headers["requestrocket-proxy-code"] == "target-unreachable"
    assert "hello" not in refused.text
    assert after.status_code == 200 and after.content == b"hello"
    received = hostile.received[before:]
    assert [r.path.rsplit("/", 1)[-1] for r in received] == [scenario, "ok"]
    assert received[0].connection != received[1].connection  # the refused one was not reused


def test_the_option_puts_direct_routes_back_on_aiohttp(admin_server, owner, hostile, tmp_path):
    """`--set portcullis_upstream_client=aiohttp`: the same obs-fold answer the lean client
    refuses (above) passes, unfolded, as aiohttp lets it through."""
    proxy = start_proxy(admin_server, tmp_path, "--set", "portcullis_upstream_client=aiohttp")
    try:
        setup = Setup(Api(admin_server.base_url, owner.token), hostile)
        auth = {"X-API-Key": CALLER_KEY}
        wait_until_served(proxy, f"/api/{setup.id}/ok", auth)
        answer = requests.get(f"{proxy.base_url}/api/{setup.id}/obs-fold", headers=auth)
        assert answer.status_code == 200 and answer.content == b"hello"
        assert answer.headers["x-a"] == "one two"
    finally:
        proxy.stop()
