"""Raw HTTP/1 over a socket, for requests no HTTP library would send, and process memory."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

READ_TIMEOUT_S = 20


@dataclass
class RawAnswer:
    """What came back on the connection: the first response, and whether the peer closed."""

    raw: bytes
    closed: bool
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> dict:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _parse(raw: bytes, closed: bool) -> RawAnswer:
    answer = RawAnswer(raw, closed)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return answer
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) >= 2 and parts[1].isdigit():
        answer.status = int(parts[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        answer.headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    length = answer.headers.get("content-length")
    answer.body = rest[: int(length)] if length and length.isdigit() else rest
    return answer


def _complete(raw: bytes) -> bool:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(rest) >= int(value.strip())
    return False


def exchange(
    base_url: str,
    data: bytes | Iterable[bytes],
    *,
    wait_for_close: bool = False,
    timeout: float = READ_TIMEOUT_S,
) -> RawAnswer:
    """Send `data` (bytes or chunks, sent from a thread so huge inputs never block reading)
    and read the answer: until one complete response, or with `wait_for_close` until the
    gateway closes the connection (bounded by `timeout`)."""
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=timeout)
    chunks = [data] if isinstance(data, bytes) else data

    def send() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the gateway refused and closed while we were still sending

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    raw, closed = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not wait_for_close and _complete(raw):
                break
            try:
                received = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not received:
                closed = True
                break
            raw += received
    finally:
        sock.close()
        sender.join(timeout=timeout)
    return _parse(raw, closed)


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def request(
    method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]], body=b""
) -> bytes:
    """A raw HTTP/1.1 request (nothing added: no Host, no Content-Length unless given)."""
    head = method + b" " + target + b" HTTP/1.1\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body
