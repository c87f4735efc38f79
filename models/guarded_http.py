"""The admin's own outbound HTTP calls (the OAuth2 code exchange), under the SSRF policy.

The host is resolved once, every address it resolves to is checked with
`models.ssrf_policy.is_allowed` against the operator's allow-list
(`PORTCULLIS_ALLOW_TARGETS`), and the connection goes to a checked address
(the name is still used for the `Host` header, TLS SNI and certificate
checks), so a DNS answer that changes between check and connect cannot
redirect the call. No redirects are followed; time and answer size are
bounded.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

from models.ssrf_policy import Network, address_class, is_allowed

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


def resolve_allowed(host: str, port: int, allowed: tuple[Network, ...]) -> str:
    """The address to connect to for `host`: every address it resolves to must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"{host} could not be resolved") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OutboundError(f"{host} could not be resolved")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_allowed(address, allowed):
            raise OutboundRefused(
                f"{host} resolves to {address} ({address_class(address)}), which the admin may "
                "not reach (PORTCULLIS_ALLOW_TARGETS)"
            )
    return addresses[0]


def _pool(scheme: str, address: str, port: int, host: str) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
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


def _read_bounded(response) -> bytes:
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > MAX_ANSWER_BYTES:
        raise OutboundError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    body = b""
    for chunk in response.stream(16 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise OutboundError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    return body


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes | str | None,
    allowed: tuple[Network, ...],
) -> Answer:
    """Send one request to `url` under the SSRF policy; any HTTP status is an `Answer`."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise OutboundError("the URL is not valid") from exc
    if parts.scheme not in DEFAULT_PORTS or not host:
        raise OutboundError("only http and https URLs with a host can be called")
    port = port or DEFAULT_PORTS[parts.scheme]
    address = resolve_allowed(host, port, allowed)
    host_header = parts.netloc.rpartition("@")[2]  # never send URL credentials as a Host
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool = _pool(parts.scheme, address, port, host)
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
            data = _read_bounded(response)
        finally:
            response.close()  # one call per pool: close, never drain what is left
    except urllib3.exceptions.TimeoutError as exc:
        raise OutboundError(f"{host} did not answer in time") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundError(f"{host} could not be reached ({type(exc).__name__})") from exc
    finally:
        pool.close()
    return Answer(response.status, dict(response.headers), data)
