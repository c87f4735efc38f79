"""The admin's own outbound HTTP calls (the OAuth2 code exchange, webhooks, pool sources),
under the SSRF policy.

The host is resolved once, every address it resolves to is checked with
`models.ssrf_policy.is_allowed` against the operator's allow-list
(`PORTCULLIS_ALLOW_TARGETS`), and the connection goes to a checked address
(the name is still used for the `Host` header, TLS SNI and certificate
checks), so a DNS answer that changes between check and connect cannot
redirect the call. No redirects are followed; time and answer size are
bounded (per call: `max_bytes`, `connect_timeout`, `read_timeout`, and a
`total_timeout` for the whole answer, so a server dripping bytes cannot hold
a call past it).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

from models.ssrf_policy import Network, address_class, first_refused

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 256 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundError(Exception):
    """The call could not be made or completed; the message says why (never a secret)."""


class OutboundRefused(OutboundError):
    """The SSRF policy refuses the destination."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def resolve_allowed(
    host: str,
    port: int,
    allowed: tuple[Network, ...],
    allow_setting: str = "PORTCULLIS_ALLOW_TARGETS",
) -> str:
    """The address to connect to for `host`: every address it resolves to must be allowed
    (`allow_setting` names the setting that could allow it, for the refusal's message)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"{host} could not be resolved") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OutboundError(f"{host} could not be resolved")
    refused = first_refused(addresses, allowed)
    if refused is not None:
        raise OutboundRefused(
            f"{host} resolves to {refused} ({address_class(refused)}), which the admin may "
            f"not reach ({allow_setting})"
        )
    return addresses[0]


def _pool(
    scheme: str, address: str, port: int, host: str, timeout: urllib3.Timeout
) -> urllib3.HTTPConnectionPool:
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    return urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)


class AnswerTooLarge(OutboundError):
    """The answer is larger than the call allows."""


def _read_bounded(response, max_bytes: int, deadline: float | None) -> bytes:
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > max_bytes:
        raise AnswerTooLarge(f"the answer is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.stream(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge(f"the answer is larger than {max_bytes} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise urllib3.exceptions.ReadTimeoutError(None, None, "the answer took too long")
    return b"".join(chunks)


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes | str | None,
    allowed: tuple[Network, ...],
    max_bytes: int = MAX_ANSWER_BYTES,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
    total_timeout: float | None = None,
    allow_setting: str = "PORTCULLIS_ALLOW_TARGETS",
) -> Answer:
    """Send one request to `url` under the SSRF policy; any HTTP status is an `Answer`.

    The defaults are the OAuth2/webhook calls' bounds; `total_timeout` (seconds) bounds
    the whole call from the first byte sent to the last one read."""
    deadline = None if total_timeout is None else time.monotonic() + total_timeout
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise OutboundError("the URL is not valid") from exc
    if parts.scheme not in DEFAULT_PORTS or not host:
        raise OutboundError("only http and https URLs with a host can be called")
    port = port or DEFAULT_PORTS[parts.scheme]
    address = resolve_allowed(host, port, allowed, allow_setting)
    host_header = parts.netloc.rpartition("@")[2]  # never send URL credentials as a Host
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    pool = _pool(parts.scheme, address, port, host, timeout)
    try:
        response = pool.urlopen(
            method,
            target,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            data = _read_bounded(response, max_bytes, deadline)
        finally:
            response.close()  # one call per pool: close, never drain what is left
    except urllib3.exceptions.TimeoutError as exc:
        raise OutboundError(f"{host} did not answer in time") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundError(f"{host} could not be reached ({type(exc).__name__})") from exc
    finally:
        pool.close()
    return Answer(response.status, dict(response.headers), data)
