"""Small real proxies for the pool's checkers, each on a loopback address of its own.

`ProxyFarm` runs them on one asyncio loop in a thread: HTTP forward proxies (absolute-form
requests and CONNECT) in modes `transparent` (adds X-Forwarded-For with the client's
address), `anonymous` (adds Via only), `elite` (adds nothing), `faker` (answers every
request itself with a canned judge-like body, never forwards) and `cacher` (forwards a path's
first request, then answers it from its cache whatever the query), a SOCKS4(a)/SOCKS5 proxy
(SOCKS5 optionally with a username and password), a tarpit that never answers, and a TLS
front (with `tls_files`, a throwaway CA) for an https judge. Each
binds its OUTGOING connections to its own address, so the judge sees a different exit address
for each. `dead_port()` is a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import socket
import ssl
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CANNED = json.dumps(
    {"nonce": "cached", "remote_addr": "203.0.113.9", "headers": {}, "method": "GET"}
).encode()


@dataclass(frozen=True)
class Listening:
    name: str
    host: str
    port: int
    protocol: str


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(r1, w1, r2, w2) -> None:
    await asyncio.gather(_pipe(r1, w2), _pipe(r2, w1))


async def read_socks5_address(reader: asyncio.StreamReader, kind: int) -> tuple[str, int]:
    """The destination of a SOCKS5 request whose address type is `kind` (1 IPv4, 4 IPv6,
    3 a name), read after the request's first four bytes."""
    if kind == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif kind == 4:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    else:
        (length,) = await reader.readexactly(1)
        host = (await reader.readexactly(length)).decode()
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    return host, port


class HttpProxy:
    """An HTTP forward proxy in one of the modes above."""

    def __init__(self, mode: str, address: str, credentials: tuple[str, str] | None = None):
        self.mode = mode
        self.address = address
        self.credentials = credentials
        self.cache: dict[str, bytes] = {}  # mode "cacher": answers by path, query ignored

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = lines[0].split(" ", 2)
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
        if self.credentials and not self._authorized(headers):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if method == "CONNECT":
            await self._connect(target, reader, writer)
        else:
            await self._forward(method, target, headers, reader, writer)

    def _authorized(self, headers) -> bool:
        user, password = self.credentials
        wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return any(k.lower() == "proxy-authorization" and v == wanted for k, v in headers)

    async def _fake(self, writer) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(CANNED)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + CANNED
        )
        await writer.drain()
        writer.close()

    async def _connect(self, target: str, reader, writer) -> None:
        host, _, port = target.rpartition(":")
        if self.mode == "faker":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")  # the request inside the tunnel
            await self._fake(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host.strip("[]"), int(port), local_addr=(self.address, 0)
            )
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice(reader, writer, up_reader, up_writer)

    async def _forward(self, method, target, headers, reader, writer) -> None:
        if self.mode == "faker":
            await self._fake(writer)
            return
        url = urlsplit(target)
        if self.mode == "cacher" and url.path in self.cache:
            writer.write(self.cache[url.path])
            await writer.drain()
            writer.close()
            return
        client = writer.get_extra_info("peername")[0]
        kept = [
            (k, v)
            for k, v in headers
            if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        if self.mode == "transparent":
            kept.append(("X-Forwarded-For", client))
        elif self.mode == "anonymous":
            kept.append(("Via", "1.1 test-proxy"))
        kept.append(("Connection", "close"))
        path = url.path + (f"?{url.query}" if url.query else "")
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept)
        up_reader, up_writer = await asyncio.open_connection(
            url.hostname, url.port or 80, local_addr=(self.address, 0)
        )
        up_writer.write((request + "\r\n").encode("latin-1"))
        await up_writer.drain()
        if self.mode == "cacher":
            self.cache[url.path] = answer = await up_reader.read()
            writer.write(answer)
            await writer.drain()
            writer.close()
        else:
            await _pipe(up_reader, writer)
        up_writer.close()


class SocksProxy:
    """A SOCKS4(a)/SOCKS5 proxy (CONNECT only); SOCKS5 with username/password when given."""

    def __init__(self, address: str, credentials: tuple[str, str] | None = None):
        self.address = address
        self.credentials = credentials

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if (await reader.readexactly(1)) == b"\x04":
                await self._serve4(reader, writer)
            else:
                await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()

    async def _serve4(self, reader, writer) -> None:
        command, port, raw_ip = struct.unpack("!BH4s", await reader.readexactly(7))
        await reader.readuntil(b"\x00")  # the user id
        host = socket.inet_ntoa(raw_ip)
        if raw_ip.startswith(b"\x00\x00\x00") and raw_ip != bytes(4):  # SOCKS4a: a name
            host = (await reader.readuntil(b"\x00"))[:-1].decode()
        if command != 1:
            writer.write(b"\x00\x5b" + bytes(6))
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(
            host, port, local_addr=(self.address, 0)
        )
        writer.write(b"\x00\x5a" + bytes(6))
        await writer.drain()
        await _splice(reader, writer, up_reader, up_writer)

    async def _serve(self, reader, writer) -> None:
        (count,) = await reader.readexactly(1)
        methods = await reader.readexactly(count)
        wanted = 2 if self.credentials else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            writer.close()
            return
        writer.write(bytes([5, wanted]))
        if self.credentials:
            _, user_len = await reader.readexactly(2)
            user = (await reader.readexactly(user_len)).decode()
            (password_len,) = await reader.readexactly(1)
            password = (await reader.readexactly(password_len)).decode()
            ok = (user, password) == self.credentials
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                writer.close()
                return
        _, command, _, kind = await reader.readexactly(4)
        host, port = await read_socks5_address(reader, kind)
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(
            host, port, local_addr=(self.address, 0)
        )
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton(self.address) + struct.pack("!H", 0))
        await writer.drain()
        await _splice(reader, writer, up_reader, up_writer)


class ProxyFarm:
    """The proxies above on a loop in a thread; use as a context manager."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.Server] = []

    def __enter__(self) -> ProxyFarm:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        async def shut() -> None:
            for server in self.servers:
                server.close()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _listen(self, handler, address: str) -> int:
        async def start() -> asyncio.Server:
            return await asyncio.start_server(handler, address, 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def http(self, name: str, mode: str, address: str, protocol: str = "http", credentials=None):
        port = self._listen(HttpProxy(mode, address, credentials).handle, address)
        return Listening(name, address, port, protocol)

    def socks(self, name: str, address: str, protocol: str = "socks5", credentials=None):
        port = self._listen(SocksProxy(address, credentials).handle, address)
        return Listening(name, address, port, protocol)

    def tls_front(self, target_port: int, cert: Path, key: Path) -> int:
        """A TLS front on 127.0.0.1 for a plain HTTP server on 127.0.0.1:`target_port`. Its
        connection to the server leaves from the client's own address, so the server sees
        the client's address as if it were reached directly."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

        async def front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            client = writer.get_extra_info("peername")[0]
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", target_port, local_addr=(client, 0)
            )
            await _splice(reader, writer, up_reader, up_writer)

        async def start() -> asyncio.Server:
            return await asyncio.start_server(front, "127.0.0.1", 0, ssl=context)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def tarpit(self, name: str, address: str) -> Listening:
        """Accepts connections and never answers (a check through it times out)."""

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        return Listening(name, address, self._listen(hold, address), "http")


def dead_port(address: str) -> int:
    """A port on `address` that nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def tls_files(directory: Path, address: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for the IP `address` it signed:
    (ca.pem, cert.pem, key.pem)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def issue(subject, issuer, public_key, signing_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pool test CA")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    ca = issue(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    cert = issue(name, ca_name, key.public_key(), ca_key, False)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
