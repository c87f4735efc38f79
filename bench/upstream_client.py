"""CPU per request of the upstream leg, aiohttp against the lean client (addons/lean_upstream.py).

    .venv/bin/python bench/upstream_client.py [--requests 5000] [--rounds 3]

bench/responder.py runs in its own process; this process sends `--requests` sequential GETs
(and as many POSTs of a small JSON body) through `UpstreamClient.send` with each client, in
alternating rounds, and prints this process's CPU µs per request (the median of the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addons.ssrf import TargetGuard, parse_allowances  # noqa: E402
from addons.upstream import Timeouts, UpstreamClient, UpstreamRequest  # noqa: E402

CLIENTS = ("aiohttp", "lean", "bare")  # bare: one asyncio connection, no parsing (the floor)


async def bare_cpu_per_request(port: int, count: int, method: str) -> float:
    """Write the request, read until the responder's fixed-size answer is in: no HTTP."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"a": 1}' if method == "POST" else b""
    request = (
        f"{method} /v1/items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    writer.write(request)
    size = len(await reader.read(65536))

    async def one() -> None:
        writer.write(request)
        got = 0
        while got < size:
            got += len(await reader.read(65536))

    try:
        for _ in range(50):
            await one()
        started = time.process_time()
        for _ in range(count):
            await one()
        return (time.process_time() - started) / count * 1e6
    finally:
        writer.close()


async def cpu_per_request(name: str, port: int, count: int, method: str) -> float:
    if name == "bare":
        return await bare_cpu_per_request(port, count, method)
    guard = TargetGuard(parse_allowances("127.0.0.1"))
    client = UpstreamClient(guard, Timeouts(5, 5), client=name)
    headers = (("Content-Type", "application/json"), ("Authorization", "Bearer t"))
    request = UpstreamRequest(method, f"http://127.0.0.1:{port}/v1/items?x=1", headers)
    body = b'{"a": 1}' if method == "POST" else None
    try:
        for _ in range(50):  # warm the pool
            await client.send(request, body, 1 << 20)
        started = time.process_time()
        for _ in range(count):
            await client.send(request, body, 1 << 20)
        return (time.process_time() - started) / count * 1e6
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    responder = subprocess.Popen([sys.executable, str(ROOT / "bench/responder.py"), str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for method in ("GET", "POST"):
            samples: dict[str, list[float]] = {name: [] for name in CLIENTS}
            for _ in range(args.rounds):
                for name in CLIENTS:
                    samples[name].append(
                        asyncio.run(cpu_per_request(name, port, args.requests, method))
                    )
            for name in CLIENTS:
                print(
                    f"{method:4} {name:8} {statistics.median(samples[name]):7.1f} µs CPU/request "
                    f"(rounds: {', '.join(f'{s:.1f}' for s in samples[name])})"
                )
    finally:
        responder.terminate()
        responder.wait()


if __name__ == "__main__":
    main()
