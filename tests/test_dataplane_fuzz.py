"""Random bytes at the data plane: never a 500, never a crash, memory bounded.

A few hundred requests over raw sockets against a real `run_proxy.py`, built
from a seeded RNG (set PORTCULLIS_FUZZ_SEED to replay one run): random bytes
in the method, the path, header names and values, the credential locations
(`Authorization`, `X-API-Key`, `?Authorization=`), and the body framing
(lengths, chunk sizes), on the Proxy and Async APIs, half of them with the
valid credential so they go deep into the pipeline. Afterwards: no answer was
a 500 or carried `gateway-error`, the data plane's log has no crash line, the
process is alive and serves a normal request, and its memory grew little.
"""

from __future__ import annotations

import os
import random
import socket
import time
from urllib.parse import urlsplit

from tests.proxy_support import CALLER_KEY, call
from tests.raw_http import RawAnswer, _complete, _parse, rss_kib

SEED = int(os.environ.get("PORTCULLIS_FUZZ_SEED", "20261130"))
REQUESTS = 300
READ_TIMEOUT_S = 5
CRASH_LINES = ("Addon error", "Traceback", "mitmproxy has crashed")
KEY = CALLER_KEY.encode()

METHODS = [b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"TRACE", b"CONNECT"]
PATH_PIECES = [
    b"v1", b"items", b"a;b=1", b"%41", b"caf%C3%A9", b"x.json", b"-", b"_", b"@", b"!$&'()*+,=",
    b"..", b".", b"..;", b"%2e%2e", b"%2e%2e%3b", b";x=1", b"%00", b"%ff", b"\xff", b"%252e",
    b"a", b"v1", b"users", b"%2f", b"\\", b"//", b"%c3%a9", b"\xc3\xa9", b"~", b"*", b"%",
]  # fmt: skip
NASTY_VALUES = [b"\xff", b"\xc3\xa9\xff", b"\x80", b"\x00", b"\x7f", b"\t", b"a\rb", b"", b" "]


def random_bytes(rng: random.Random, low: int, high: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(low, high)))


def field_value(rng: random.Random) -> bytes:
    """Random bytes on one line (a CR or LF would only end the head early); mostly
    printable or high bytes, which pass the parser and go deep, sometimes anything."""
    roll = rng.random()
    if roll < 0.6:
        value = bytes(rng.randint(0x20, 0xFF) for _ in range(rng.randint(0, 40)))
    elif roll < 0.8:
        value = rng.choice(NASTY_VALUES) * rng.randint(1, 3)
    else:
        value = random_bytes(rng, 0, 40)
    return value.replace(b"\r", b"").replace(b"\n", b"")


def field_name(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.5:
        name = b"X-Fuzz-%d" % rng.randint(0, 99)
    elif roll < 0.6:
        name = b"X-\xff"
    else:
        name = random_bytes(rng, 1, 12)
    return name.replace(b"\r", b"").replace(b"\n", b"").replace(b":", b"") or b"X"


def method(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(METHODS)
    if roll < 0.85:
        return bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(1, 12)))
    return random_bytes(rng, 1, 8).replace(b" ", b"").replace(b"\n", b"") or b"G"


def path(rng: random.Random, proxy_id: bytes) -> bytes:
    prefix = rng.choice([b"/api/", b"/async/"])
    pieces = [rng.choice([*PATH_PIECES, random_bytes(rng, 1, 6)]) for _ in range(rng.randint(0, 5))]
    target = prefix + proxy_id + b"/" + b"/".join(pieces)
    if rng.random() < 0.4:
        target += b"?" + rng.choice([b"Authorization=", b"a=", b""]) + random_bytes(rng, 0, 12)
    return target.replace(b" ", b"%20").replace(b"\r", b"").replace(b"\n", b"")


def credential(rng: random.Random) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Header fields and a query suffix carrying a credential, valid half the time."""
    if rng.random() < 0.5:
        return [(b"X-API-Key", KEY)], b""
    garbage = field_value(rng)
    return rng.choice(
        [
            ([(b"X-API-Key", garbage)], b""),
            ([(b"Authorization", garbage)], b""),
            ([(b"Authorization", b"Bearer " + garbage)], b""),
            ([(b"Authorization", b"Basic " + garbage)], b""),
            ([], b"Authorization=" + garbage.replace(b" ", b"+").replace(b"#", b"%23")),
            ([], b""),
        ]
    )


def body(rng: random.Random) -> tuple[list[tuple[bytes, bytes]], bytes, bool]:
    """Framing headers, body bytes, and whether the framing is complete."""
    data = random_bytes(rng, 0, 64)
    kind = rng.randrange(7)
    if kind == 0:
        return [], b"", True
    if kind == 1:
        return [(b"Content-Length", b"%d" % len(data))], data, True
    if kind == 2:  # a length that does not match what follows
        return [(b"Content-Length", b"%d" % (len(data) + rng.randint(1, 50)))], data, False
    if kind == 3:
        chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data) if data else b"0\r\n\r\n"
        return [(b"Transfer-Encoding", b"chunked")], chunks, True
    if kind == 4:  # random chunk-size line
        return [(b"Transfer-Encoding", b"chunked")], field_value(rng) + b"\r\n" + data, False
    if kind == 5:
        return (
            [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"%d" % len(data))],
            data,
            False,
        )
    return (
        [(b"Content-Length", rng.choice([b"-1", b"abc", b"1e3", b"", b"99999999999999"]))],
        data,
        False,
    )


def fuzz_request(rng: random.Random, proxy_id: bytes) -> tuple[bytes, bool]:
    """A well-formed, authorized request with one to three parts replaced by random ones."""
    mutated = set(
        rng.sample(["method", "path", "names", "values", "credential", "body"], rng.randint(1, 3))
    )
    target = (
        path(rng, proxy_id)
        if "path" in mutated
        else rng.choice([b"/api/", b"/async/"]) + proxy_id + b"/v1/items?limit=5"
    )
    fields, query = credential(rng) if "credential" in mutated else ([(b"X-API-Key", KEY)], b"")
    if query:
        target += (b"&" if b"?" in target else b"?") + query
    framing, data, complete = body(rng) if "body" in mutated else ([], b"", True)
    extra = [
        (
            field_name(rng) if "names" in mutated else b"X-Fuzz-%d" % number,
            field_value(rng) if "values" in mutated else b"plain",
        )
        for number in range(rng.randint(1, 6))
    ]
    headers = [(b"Host", b"gw"), *fields, *extra, *framing]
    rng.shuffle(headers)
    verb = method(rng) if "method" in mutated else rng.choice([b"GET", b"POST"])
    head = verb + b" " + target + b" HTTP/1.1\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + data, complete


def send(base_url: str, raw: bytes, complete: bool) -> RawAnswer:
    """Send `raw`; if its framing is incomplete, end our side so the gateway sees the end."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=READ_TIMEOUT_S) as s:
        received, closed = b"", False
        try:
            s.sendall(raw)
            if not complete:
                s.shutdown(socket.SHUT_WR)
            while not _complete(received):
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            closed = True
    return _parse(received, closed)


def test_random_bytes_never_crash_the_data_plane(setup, gateway):
    rng = random.Random(SEED)
    log_start = len(gateway.log_text())
    rss_before = rss_kib(gateway.process.pid)
    proxy_id = setup.id.encode()
    failures, statuses = [], {}
    started = time.monotonic()
    for number in range(REQUESTS):
        raw, complete = fuzz_request(rng, proxy_id)
        answer = send(gateway.base_url, raw, complete)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status == 500 or answer.header("requestrocket-proxy-code") == "gateway-error":
            failures.append((number, raw[:200], answer.raw[:300]))
    assert failures == [], f"seed {SEED}: {failures[:3]}"
    assert gateway.process.poll() is None, "the data plane died"
    log = gateway.log_text()[log_start:]
    crashes = [line for line in log.splitlines() if any(c in line for c in CRASH_LINES)]
    assert crashes == [], f"seed {SEED}: {crashes[:5]}"
    normal = call(gateway, "GET", f"/api/{setup.id}/after-fuzz", headers={"X-API-Key": CALLER_KEY})
    assert normal.status_code == 200, normal.text
    growth_mib = (rss_kib(gateway.process.pid) - rss_before) / 1024
    assert growth_mib < 64, f"data plane grew by {growth_mib:.0f} MiB"
    # The run exercised the deep paths, not only the parser's refusals.
    assert statuses.get(200, 0) + statuses.get(202, 0) > 10, statuses
    assert statuses.get(400, 0) > 10 and statuses.get(401, 0) > 0, statuses
    assert time.monotonic() - started < 120, statuses  # a run that hangs is a finding too
    print(f"seed {SEED}: answers by status {statuses}")
