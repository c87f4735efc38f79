"""Issue 18's streaming scenarios of `make bench` (alone: `bench/run.py --only sse,download`).

S. SSE time to first byte: the time from sending a request to the first event's bytes,
   direct to the target, through bare mitmdump (streaming) and through Portcullis (full
   pipeline); the figure is Portcullis minus direct (goal: under 1 ms). The target
   (bench/stream_responder.py) sends its head at once and its first event THINK_MS later, so
   the event takes the gateway's streaming path, not the "whole body already here" one.
   One keep-alive connection per path, streams one after another; median per round.
L. a 100 MiB download (Content-Length) as fast as the caller reads it, through Portcullis
   on a proxy with `proxyMaxResponseBytes: 0` (no limit) and through bare mitmdump with
   `stream_large_bodies=1` (so it streams too: mitmdump streams a chunked body only once
   more than that many bytes are buffered); the figure is the throughput ratio
   Portcullis / bare, median of the rounds; the gateway's RSS before and after.

Processes: mitmdump and Portcullis on core 0, the target on core 1; the measuring client
runs in this process, moved to core 1 while it measures.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.configure import configure
from bench.processes import (
    BENCH,
    DATA_PLANE_CORE,
    LOAD_CORE,
    Processes,
    answers,
    free_port,
    pinned,
    rss_mb,
    start_admin,
    start_gateway,
    wait_for,
)
from bench.stream_responder import THINK_MS

SCENARIOS = ("sse", "download")
SSE_ROUNDS, SSE_WARMUP, SSE_STREAMS, SSE_EVENTS = 3, 20, 100, 3
TTFB_GOAL_MS = 1.0
DOWNLOAD_ROUNDS = 3
DOWNLOAD_BYTES = 100 * 1024 * 1024
WARMUP_BYTES = 10 * 1024 * 1024
READ_BUFFER = 1 << 20
MIB = 1024 * 1024
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Route:
    """Where a measurement goes: a port and a request path, with the caller's headers."""

    name: str
    port: int
    prefix: str  # the path prefix in front of /sse and /download
    headers: dict


@contextmanager
def on_load_core() -> Iterator[None]:
    """This process on the load core while it measures (as wrk is in bench/run.py)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def connect(port: int) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


@dataclass(frozen=True)
class SseRun:
    head_ms: float  # median time to the answer's head
    first_ms: float  # median time to the first event's bytes: the time to first byte
    buffered: int  # streams whose first read held every event (not streamed)
    plain_ms: float  # median time of a plain GET answered at once (200, empty), for context


def sse_run(route: Route, streams: int) -> SseRun:
    """`streams` streams one after another on one keep-alive connection, each read to its
    end (it must carry all its events); the medians of their times."""
    connection = connect(route.port)
    heads, firsts, buffered = [], [], 0
    try:
        for _ in range(streams):
            started = time.perf_counter()
            connection.request("GET", f"{route.prefix}/sse", headers=route.headers)
            response = connection.getresponse()
            heads.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{route.name}: SSE answered {response.status}")
            first = response.read1(READ_BUFFER)  # returns with the first bytes that arrive
            firsts.append((time.perf_counter() - started) * 1000)
            buffered += first.count(b"data:") == SSE_EVENTS
            body = first + response.read()
            if body.count(b"data:") != SSE_EVENTS:
                raise RuntimeError(f"{route.name}: a stream lost events: {body!r}")
        plain = []
        for _ in range(streams):
            started = time.perf_counter()
            connection.request("GET", f"{route.prefix}/ready", headers=route.headers)
            response = connection.getresponse()
            response.read()
            plain.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{route.name}: a plain GET answered {response.status}")
    finally:
        connection.close()
    return SseRun(
        statistics.median(heads),
        statistics.median(firsts),
        buffered,
        statistics.median(plain),
    )


def download_mib_s(route: Route, size: int) -> float:
    """A download of `size` bytes read as fast as this process can, in MiB/s."""
    connection = connect(route.port)
    buffer = memoryview(bytearray(READ_BUFFER))
    try:
        started = time.perf_counter()
        connection.request("GET", f"{route.prefix}/download?bytes={size}", headers=route.headers)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{route.name}: download answered {response.status}")
        received = 0
        while count := response.readinto(buffer):
            received += count
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if received != size:
        raise RuntimeError(f"{route.name}: {received} of {size} bytes arrived")
    return size / MIB / elapsed


def start(processes: Processes) -> tuple[dict[str, Route], int]:
    """The target, bare mitmdump and Portcullis (own admin and store); the routes, and the
    gateway's pid."""
    target_port, bare_port, admin_port, gw_port = (free_port() for _ in range(4))
    target = f"http://{HOST}:{target_port}"
    processes.start(
        "stream-target",
        pinned(LOAD_CORE, sys.executable, BENCH / "stream_responder.py", target_port),
    )
    processes.start(
        "stream-bare",
        pinned(
            DATA_PLANE_CORE, Path(sys.executable).parent / "mitmdump", "-q",
            "--mode", f"reverse:{target}", "--listen-host", HOST, "-p", bare_port,
            "--set", "connection_strategy=lazy", "--set", "stream_large_bodies=1",
        ),
    )  # fmt: skip
    var_dir = processes.var_dir / "streaming"
    var_dir.mkdir(exist_ok=True)
    env = {"PORTCULLIS_VAR_DIR": str(var_dir)}
    api = start_admin(processes, "stream-admin", admin_port, env)
    [proxy] = configure(api, target, 1, proxy_fields={"proxyMaxResponseBytes": 0})
    gateway = start_gateway(processes, "stream-gateway", gw_port, env=env)
    routes = {
        "direct": Route("direct", target_port, "", {}),
        "bare": Route("bare mitmdump", bare_port, "", {}),
        "gateway": Route("Portcullis", gw_port, f"/api/{proxy.id}", {"X-API-Key": proxy.key}),
    }
    for route in routes.values():
        url = f"http://{HOST}:{route.port}{route.prefix}/ready"
        wait_for(lambda u=url, h=route.headers: answers(u, h), route.name)
    return routes, gateway.pid


def measure_sse(routes: dict[str, Route]) -> dict[str, list[SseRun]]:
    """Per route, each round's run."""
    runs: dict[str, list[SseRun]] = {name: [] for name in routes}
    with on_load_core():
        for route in routes.values():
            sse_run(route, SSE_WARMUP)
        for number in range(1, SSE_ROUNDS + 1):
            print(f"S. SSE time to first byte, round {number}/{SSE_ROUNDS} ...", flush=True)
            for name, route in routes.items():
                runs[name].append(sse_run(route, SSE_STREAMS))
    return runs


def measure_download(routes: dict[str, Route], gateway_pid: int) -> tuple[dict, tuple]:
    """Per path, each round's MiB/s; and the gateway's RSS (MB) before and after."""
    rates: dict[str, list[float]] = {name: [] for name in routes}
    rss_before = rss_mb(gateway_pid)
    with on_load_core():
        for route in routes.values():
            download_mib_s(route, WARMUP_BYTES)
        for number in range(1, DOWNLOAD_ROUNDS + 1):
            print(f"L. 100 MiB download, round {number}/{DOWNLOAD_ROUNDS} ...", flush=True)
            for name, route in routes.items():
                rates[name].append(download_mib_s(route, DOWNLOAD_BYTES))
    return rates, (rss_before, rss_mb(gateway_pid))


def run(processes: Processes, scenarios: set[str]) -> list[tuple[str, bool, str]]:
    """Measure the chosen scenarios, print their tables; the targets (name, met, value)."""
    routes, gateway_pid = start(processes)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"Load average before measuring: {' '.join(load)} (on {os.cpu_count()} cores; other "
          "work on the machine slows every route, the gateway's most)", flush=True)  # fmt: skip
    targets = []
    if "sse" in scenarios:
        targets.append(report_sse(measure_sse(routes)))
    if "download" in scenarios:
        rates, rss = measure_download(routes, gateway_pid)
        report_download(rates, rss)
    return targets


def report_sse(runs: dict[str, list[SseRun]]) -> tuple[str, bool, str]:
    def median(name: str, field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs[name])

    def minus_direct(name: str) -> float:
        return statistics.median(
            mine.first_ms - direct.first_ms
            for mine, direct in zip(runs[name], runs["direct"], strict=True)
        )

    print()
    print(
        f"S. SSE time to first byte: {SSE_STREAMS} streams per route and round after "
        f"{SSE_WARMUP} warm-up streams, {SSE_ROUNDS} rounds, one keep-alive connection. The "
        f"target sends its head at once and its first event {THINK_MS} ms later (in every "
        "figure); 'first event - head' less those ms is how late the event is passed on. "
        "'plain GET' is a request answered at once (empty 200) on the same connection: what "
        "the route costs any request, streamed or not."
    )
    print()
    print("| SSE | plain GET ms | head ms | first event ms (TTFB) | TTFB minus direct "
          "| first event - head | streams not streamed |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    labels = {"direct": "direct to the target", "bare": "bare mitmdump, stream_large_bodies=1",
              "gateway": "Portcullis, full pipeline"}  # fmt: skip
    for name, label in labels.items():
        vs = "" if name == "direct" else f"{minus_direct(name):+.2f}"
        head, first = median(name, "head_ms"), median(name, "first_ms")
        not_streamed = sum(run.buffered for run in runs[name])
        print(f"| {label} | {median(name, 'plain_ms'):.2f} | {head:.2f} | {first:.2f} | {vs} "
              f"| {first - head:.2f} "
              f"| {not_streamed} of {SSE_ROUNDS * SSE_STREAMS} |")  # fmt: skip
    gap = minus_direct("gateway")
    return ("SSE time to first byte, gateway - direct < 1 ms", gap < TTFB_GOAL_MS, f"{gap:+.2f} ms")


def report_download(rates: dict[str, list[float]], rss: tuple[float, float]) -> None:
    ratio = statistics.median(
        gw / bare for gw, bare in zip(rates["gateway"], rates["bare"], strict=True)
    )
    print()
    print(f"L. {DOWNLOAD_BYTES // MIB} MiB download (Content-Length), {DOWNLOAD_ROUNDS} rounds "
          "after a 10 MiB warm-up; the caller reads into a 1 MiB buffer.")  # fmt: skip
    print()
    print("| 100 MiB streamed download | MiB/s (median of rounds) | vs bare mitmdump |")
    print("|---|---:|---:|")
    print(f"| direct to the target | {statistics.median(rates['direct']):,.0f} | |")
    print(f"| bare mitmdump, stream_large_bodies=1 | {statistics.median(rates['bare']):,.0f} "
          "| 1.00 |")  # fmt: skip
    print(f"| Portcullis, proxyMaxResponseBytes 0 | {statistics.median(rates['gateway']):,.0f} "
          f"| {ratio:.2f} |")  # fmt: skip
    before, after = rss
    print(f"\nPortcullis RSS: {before:.0f} MB before the downloads, {after:.0f} MB after "
          f"({after - before:+.0f} MB for {DOWNLOAD_ROUNDS + 1} downloads, "
          f"{(DOWNLOAD_ROUNDS * DOWNLOAD_BYTES + WARMUP_BYTES) // MIB} MiB streamed).")  # fmt: skip
