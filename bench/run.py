"""`make bench`: what Portcullis costs on top of bare mitmdump, measured in one run.

A. direct to a fast local responder
B. bare mitmdump in reverse mode (same mitmproxy, same options, no addons)
C. Portcullis, full pipeline: apiKey auth, three rules, target credential
   injection, request log, telemetry and metrics
D. as C with 100 proxies, 100 credentials and 300 rules, traffic spread over them
D+. as D, and every proxy also has a conditional usage meter and a payload filter
   (with its rate limit, which every proxy has, these are the limit stage's three parts)
E. the Async API, enqueue rate in three layouts (issue 19): "alone" (a gateway
   started with `--no-dispatcher`, its own store, nothing delivering), "while a
   dispatcher process delivers" (the same gateway while a `--dispatcher-only`
   process on the load core drains the backlog), and "while delivering in the
   same process" (the default layout: one process accepts and delivers); and
   how fast the queued jobs are delivered in each delivering layout
F. as C through HAProxy (the layout of `make run WORKERS=N`): 1 worker, 2 workers
C on PostgreSQL: as C with the store on a throwaway PostgreSQL server
S. and L. (issue 18, bench/streaming.py): SSE time to first byte, and a 100 MiB streamed
   download's throughput, against direct and bare mitmdump

`bench/run.py --only sse,download` runs only S and L (`main` is A to F, the latency,
memory, RSS-with-10,000-proxies and Core API figures); `--only async` runs B and the
three E layouts only, `--only rss` the RSS with 10,000 proxies only; `make bench`
runs everything.

Each round measures B, C, D, D+, E, F and C on PostgreSQL in turn, so drift of the
machine falls on all of them. The ratios are to B of the same round (F and C on
PostgreSQL: to C of the same round), median over the rounds. mitmdump processes
run on core 0; wrk and the responder on core 1 (and the second worker of F: see
its note). Every measured run follows a warm-up. Latency is also measured with
one connection, where it is the time a request spends in the gateway. At the
end, bench/rss_proxies.py reports the RSS of a data plane with 10,000 proxies, and
bench/core_api.py times the Core API's list of 10,000 proxies on both stores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import streaming
from bench.balancer import (
    consecutive_free_ports,
    haproxy_command,
    start_postgresql,
    trusted_balancer_args,
)
from bench.configure import configure
from bench.processes import (
    BENCH,
    DATA_PLANE_CORE,
    LOAD_CORE,
    ROOT,
    Processes,
    answers,
    free_port,
    pinned,
    rss_mb,
    start_admin,
    start_gateway,
    wait_for,
)

ROUNDS = 3
WARMUP_S, MEASURE_S = 2, 8
CONNECTIONS = 50
LATENCY_ROUNDS = 2
MEMORY_MARKS = (20_000, 200_000)
SPREAD_PROXIES = 100
DRAIN_TIMEOUT_S = 180


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_ms: float | None = None  # CPU of the measured process per request, all its threads


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk is missing; installing it from Debian (apt-get install wrk)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, seconds: int, *, connections: int = CONNECTIONS, script=None, env=None) -> Run:
    command = pinned(LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency")
    if script:
        command += ["-s", str(BENCH / script)]
    output = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed requests\n{output}")
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_ms(re.search(r"\s50%\s+(\S+)", output).group(1)),
        p99_ms=_ms(re.search(r"\s99%\s+(\S+)", output).group(1)),
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
    )


def measure(url: str, pid: int | None = None, **kwargs) -> Run:
    """A measured wrk run after a warm-up; with `pid`, also that process's CPU per request
    (less sensitive than req/s to whatever else the machine runs)."""
    wrk(url, WARMUP_S, **kwargs)
    before = cpu_seconds(pid) if pid else 0.0
    run = wrk(url, MEASURE_S, **kwargs)
    if not pid:
        return run
    return dataclasses.replace(run, cpu_ms=(cpu_seconds(pid) - before) * 1000 / run.requests)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far, every thread included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# main: A to F, latency, memory, RSS with 10,000 proxies and the Core API;
# async: B and the three E layouts; rss: the RSS with 10,000 proxies
SCENARIOS = ("main", "async", "rss", *streaming.SCENARIOS)


def chosen_scenarios(argv: list[str] | None = None) -> set[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run, of {', '.join(SCENARIOS)} (default: all)",
    )
    chosen = {name.strip() for name in parser.parse_args(argv).only.split(",") if name.strip()}
    if not chosen or chosen - set(SCENARIOS):
        parser.error(f"--only: choose from {', '.join(SCENARIOS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    chosen = chosen_scenarios(argv)
    var_dir = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    processes = Processes(var_dir)
    code = 0
    try:
        if "main" in chosen:
            ensure_wrk()
            code = benchmark(processes)
        elif "async" in chosen:
            ensure_wrk()
            code = benchmark(processes, async_only=True)
        if chosen & set(streaming.SCENARIOS):
            print("\nStreaming (issue 18): starting a target, bare mitmdump and Portcullis ...",
                  flush=True)  # fmt: skip
            for name, met, value in streaming.run(processes, chosen):
                print(f"target {name}: {'met' if met else 'MISSED'} ({value})")
    finally:
        processes.stop()
    if chosen & {"main", "rss"}:
        print("\nRSS of a data plane with 10,000 proxies configured ...", flush=True)
        subprocess.run([sys.executable, "-m", "bench.rss_proxies"], cwd=ROOT, check=True)
    if "main" in chosen:
        core_api()
    return code


def core_api() -> None:
    """The Core API's list of 10,000 proxies on both stores (bench/core_api.py, if present)."""
    if not (BENCH / "core_api.py").exists():
        print("\n(bench/core_api.py is missing: no Core API figures)")
        return
    print("\nCore API: the list of 10,000 proxies, on SQLite and on PostgreSQL ...", flush=True)
    subprocess.run([sys.executable, "-m", "bench.core_api"], cwd=ROOT, check=True)


def benchmark(processes: Processes, async_only: bool = False) -> int:
    """A to F, latency and memory; with `async_only`, B and the three E layouts only."""
    up_port, admin_port, bare_port, gw_port = (free_port() for _ in range(4))
    upstream = f"http://127.0.0.1:{up_port}"
    processes.start("responder", pinned(LOAD_CORE, sys.executable, BENCH / "responder.py", up_port))
    api = start_admin(processes, "admin", admin_port)
    what = "1" if async_only else "1 + 100 + 100"
    print(f"Configuring {what} proxies through the Core API ...", flush=True)
    [single] = configure(api, upstream, 1)
    spread = [] if async_only else configure(api, upstream, SPREAD_PROXIES)
    governed = [] if async_only else configure(api, upstream, SPREAD_PROXIES, governed=True)
    spread_files = {
        name: spread_file(processes.var_dir / f"{name}.txt", proxies)
        for name, proxies in (("D", spread), ("D+", governed))
        if proxies
    }

    bare_process = processes.start(
        "bare",
        pinned(
            DATA_PLANE_CORE, Path(sys.executable).parent / "mitmdump", "-q",
            "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1", "-p", bare_port,
            "--set", "connection_strategy=lazy", "--set", "stream_large_bodies=1m",
        ),
    )  # fmt: skip
    gateway = start_gateway(processes, "gateway", gw_port).pid
    bare_url = f"http://127.0.0.1:{bare_port}/api/x/items"
    c_url = f"http://127.0.0.1:{gw_port}/api/{single.id}/items"
    wait_for(lambda: answers(bare_url), "bare mitmdump")
    wait_for(lambda: answers(c_url, {"X-API-Key": single.key}), "Portcullis")
    for last in [] if async_only else [spread[-1], governed[-1]]:
        wait_for(lambda p=last: answers(f"http://127.0.0.1:{gw_port}/api/{p.id}/items",
                                        {"X-API-Key": p.key}), "the 200 proxies")  # fmt: skip

    apart = AsyncApart.start(processes, upstream)
    if not async_only:
        balanced = start_balanced(processes, single)
        pg_proxy, pg_url = start_on_postgresql(processes, upstream)

    key_env = {"BENCH_KEY": single.key}
    direct = None
    if not async_only:
        print("A. direct ...", flush=True)
        direct = measure(f"{upstream}/items")
    rounds = []
    for number in range(1, ROUNDS + 1):
        names = "B E" if async_only else "B C D D+ E F1 F2 C-on-PostgreSQL"
        print(f"Round {number}/{ROUNDS}: {names} ...", flush=True)
        bare = measure(bare_url, bare_process.pid)
        measured = {"B": bare, **apart.measure(processes)}
        enqueue, delivery = measure_async(gw_port, single.id, upstream, key_env, gateway)
        measured.update({"E": enqueue, "E delivery": delivery})
        if not async_only:
            measured["C"] = measure(c_url, gateway, script="key.lua", env=key_env)
            for name, path in spread_files.items():
                measured[name] = measure(
                    f"http://127.0.0.1:{gw_port}/",
                    gateway,
                    script="spread.lua",
                    env={"SPREAD_FILE": str(path)},
                )
            measured["F1"] = measure(balanced["F1"], script="key.lua", env=key_env)
            measured["F2"] = measure(balanced["F2"], script="key.lua", env=key_env)
            measured["C pg"] = measure(pg_url, script="key.lua", env={"BENCH_KEY": pg_proxy.key})
        rounds.append(measured)
    if async_only:
        report_async(rounds)
        return 0

    print("Latency with one connection: B C ...", flush=True)
    latency = [
        (
            measure(bare_url, connections=1),
            measure(c_url, connections=1, script="key.lua", env=key_env),
        )
        for _ in range(LATENCY_ROUNDS)
    ]

    print("Memory: a fresh Portcullis process, RSS after 20k and 200k requests ...", flush=True)
    memory = measure_memory(processes, single, key_env)

    report(direct, rounds, latency, memory)
    return 0


def spread_file(path: Path, proxies: list) -> Path:
    """The proxies' ids and keys, one `id key` line each, for spread.lua."""
    path.write_text("".join(f"{p.id} {p.key}\n" for p in proxies))
    return path


def start_balanced(processes: Processes, single) -> dict[str, str]:
    """F: workers as `make run WORKERS=N` starts them, and two HAProxys from its template:
    F1 in front of worker 1 (core 0, as C), F2 in front of workers 1 and 2 (core 1).
    The URLs of scenario F1 and F2."""
    base = consecutive_free_ports(2)
    for number, core in ((1, DATA_PLANE_CORE), (2, LOAD_CORE)):
        start_gateway(
            processes, f"worker{number}", base + number - 1, *trusted_balancer_args(),
            "--no-dispatcher", core=core,
        )  # fmt: skip
    urls = {}
    for name, workers in (("F1", 1), ("F2", 2)):
        port = free_port()
        command = haproxy_command(processes.var_dir, name, workers, base, port, free_port())
        processes.start(f"haproxy-{name}", command)
        urls[name] = f"http://127.0.0.1:{port}/api/{single.id}/items"
    headers = {"X-API-Key": single.key}
    for port in (base, base + 1):
        url = f"http://127.0.0.1:{port}/api/{single.id}/items"
        wait_for(lambda u=url: answers(u, headers), f"F's worker on port {port}")
    for name, url in urls.items():
        wait_for(lambda u=url: answers(u, headers), f"scenario {name}'s HAProxy")
    return urls


def start_on_postgresql(processes: Processes, upstream: str) -> tuple:
    """C on PostgreSQL: a throwaway server (the tests'), an admin and a gateway on it.
    The proxy and the URL to measure."""
    _server, database_url = start_postgresql()  # stopped at exit
    var_dir = processes.var_dir / "pg"
    var_dir.mkdir()
    env = {"DATABASE_URL": database_url, "PORTCULLIS_VAR_DIR": str(var_dir)}
    admin_port, port = free_port(), free_port()
    [proxy] = configure(start_admin(processes, "admin-pg", admin_port, env), upstream, 1)
    start_gateway(processes, "gateway-pg", port, env=env)
    url = f"http://127.0.0.1:{port}/api/{proxy.id}/items"
    wait_for(lambda: answers(url, {"X-API-Key": proxy.key}), "Portcullis on PostgreSQL")
    return proxy, url


def delivered_count(upstream: str) -> int:
    """How many async jobs the responder has been sent so far."""
    return int(requests.get(f"{upstream}/__count", timeout=5).text)


def measure_enqueue(url: str, pid: int, env: dict, warm_up: bool = True) -> tuple[Run, int]:
    """`measure` for the enqueue script: the measured run (with the accepting process's CPU
    per request) and how many jobs were accepted, warm-up included."""
    warmed = wrk(url, WARMUP_S, script="enqueue.lua", env=env).requests if warm_up else 0
    before = cpu_seconds(pid)
    run = wrk(url, MEASURE_S, script="enqueue.lua", env=env)
    cpu_ms = (cpu_seconds(pid) - before) * 1000 / run.requests
    return dataclasses.replace(run, cpu_ms=cpu_ms), warmed + run.requests


def measure_async(
    port: int, proxy_id: str, upstream: str, env: dict, pid: int
) -> tuple[Run, float]:
    """E in the default layout (this process accepts and delivers): the enqueue rate, and
    deliveries per second until the backlog is gone."""
    delivered_before = delivered_count(upstream)
    started = time.monotonic()
    url = f"http://127.0.0.1:{port}/async/{proxy_id}/events"
    run, accepted = measure_enqueue(url, pid, env)

    def delivered() -> int:
        return delivered_count(upstream) - delivered_before

    wait_for(lambda: delivered() >= accepted, "the async backlog", DRAIN_TIMEOUT_S)
    return run, delivered() / (time.monotonic() - started)


@dataclass(frozen=True)
class AsyncApart:
    """E with delivery apart: a store of its own, a gateway started with `--no-dispatcher`
    (core 0, measured), and in each round a `--dispatcher-only` process on the load core."""

    env: dict
    proxy: object
    port: int
    pid: int
    upstream: str

    @classmethod
    def start(cls, processes: Processes, upstream: str) -> AsyncApart:
        var_dir = processes.var_dir / "async"
        var_dir.mkdir()
        env = {"PORTCULLIS_VAR_DIR": str(var_dir)}
        [proxy] = configure(start_admin(processes, "admin-async", free_port(), env), upstream, 1)
        port = free_port()
        pid = start_gateway(processes, "async-accept", port, "--no-dispatcher", env=env).pid
        url = f"http://127.0.0.1:{port}/api/{proxy.id}/items"
        wait_for(lambda: answers(url, {"X-API-Key": proxy.key}), "the --no-dispatcher gateway")
        return cls(env, proxy, port, pid, upstream)

    def measure(self, processes: Processes) -> dict:
        """ "E alone" (nothing delivers), then "E apart" while a dispatcher-only process
        drains the backlog, and that process's deliveries per second."""
        url = f"http://127.0.0.1:{self.port}/async/{self.proxy.id}/events"
        env = {"BENCH_KEY": self.proxy.key}
        delivered_before = delivered_count(self.upstream)
        alone, accepted = measure_enqueue(url, self.pid, env)
        port = free_port()
        dispatcher = start_gateway(
            processes, f"dispatcher-{port}", port, "--dispatcher-only", core=LOAD_CORE,
            env=self.env,
        )  # fmt: skip
        health = f"http://127.0.0.1:{port}/_portcullis/health"
        wait_for(lambda: answers(health), "the --dispatcher-only process")
        started = time.monotonic()
        apart, more = measure_enqueue(url, self.pid, env, warm_up=False)  # warm from "alone"

        def delivered() -> int:
            return delivered_count(self.upstream) - delivered_before

        wait_for(lambda: delivered() >= accepted + more, "the async backlog", DRAIN_TIMEOUT_S)
        rate = delivered() / (time.monotonic() - started)
        processes.stop_one(dispatcher)
        return {"E alone": alone, "E apart": apart, "E apart delivery": rate}


def measure_memory(processes: Processes, single, env: dict) -> tuple[float, float]:
    port = free_port()
    fresh = start_gateway(processes, "memory", port)
    url = f"http://127.0.0.1:{port}/api/{single.id}/items"
    wait_for(lambda: answers(url, {"X-API-Key": single.key}), "the memory run's Portcullis")
    marks, sent = [], 0
    for mark in MEMORY_MARKS:
        while sent < mark:
            sent += wrk(url, 5, script="key.lua", env=env).requests
        marks.append(rss_mb(fresh.pid))
    return marks[0], marks[1]


LABELS = {
    "B": "B. bare mitmdump, reverse mode",
    "C": "C. Portcullis, full pipeline",
    "D": "D. Portcullis, 100 proxies / 300 rules",
    "D+": "D+. as D, with a conditional meter and a payload filter on every proxy",
    "E alone": "E. Async API, enqueue alone (--no-dispatcher, nothing delivering)",
    "E apart": "E. Async API, enqueue while a --dispatcher-only process (core 1) delivers",
    "E": "E. Async API, enqueue while delivering in the same process (default layout)",
}
DELIVERY_LABELS = {
    "E apart delivery": "E. delivery by a --dispatcher-only process on core 1",
    "E delivery": "E. delivery in the accepting process (default layout)",
}


class Figures:
    """Medians over the rounds, ratios to B of the same round."""

    def __init__(self, rounds: list[dict]):
        self.rounds = rounds

    def median(self, name: str, field: str = "rps") -> float:
        return statistics.median(getattr(r[name], field) for r in self.rounds)

    def ratio(self, name: str) -> float:
        return statistics.median(r[name].rps / r["B"].rps for r in self.rounds)

    def table(self, direct: Run | None) -> None:
        print("| scenario | req/s | p50 ms | p99 ms | vs B (median of rounds) | CPU ms / request |")
        print("|---|---:|---:|---:|---:|---:|")
        if direct is not None:
            print(f"| A. direct to the responder | {direct.rps:,.0f} | {direct.p50_ms:.2f} "
                  f"| {direct.p99_ms:.2f} | | |")  # fmt: skip
        for key, label in LABELS.items():
            if key not in self.rounds[0]:
                continue
            vs = "1.00" if key == "B" else f"{self.ratio(key):.2f}"
            cpu = self.rounds[0][key].cpu_ms
            cpu = f"{self.median(key, 'cpu_ms'):.3f}" if cpu is not None else ""
            print(f"| {label} | {self.median(key):,.0f} | {self.median(key, 'p50_ms'):.2f} | "
                  f"{self.median(key, 'p99_ms'):.2f} | {vs} | {cpu} |")  # fmt: skip
        for key, label in DELIVERY_LABELS.items():
            rate = statistics.median(r[key] for r in self.rounds)
            print(f"| {label} (jobs/s until the backlog is gone) | {rate:,.0f} | | | | |")
        print(
            "\nE's CPU per request is the accepting process's: in the default layout it includes "
            'the deliveries that process makes meanwhile. The E target "while delivering" is '
            "checked on both layouts: one process accepting and delivering (the default, as the "
            "issue measured it), and delivery in a --dispatcher-only process (issue 19's lever 5)."
        )

    def async_targets(self) -> list[tuple[str, bool, str]]:
        return [
            ("E enqueue alone >= 0.85 of B", self.ratio("E alone") >= 0.85,
             f"{self.ratio('E alone'):.2f}"),
            ("E enqueue while delivering, one process accepting and delivering >= 0.75 of B",
             self.ratio("E") >= 0.75, f"{self.ratio('E'):.2f}"),
            ("E enqueue while a --dispatcher-only process delivers >= 0.75 of B",
             self.ratio("E apart") >= 0.75, f"{self.ratio('E apart'):.2f}"),
        ]  # fmt: skip


def print_targets(targets: list[tuple[str, bool, str]]) -> None:
    print("\nTargets (issue 19):")
    for name, met, value in targets:
        print(f"target {name}: {'met' if met else 'MISSED'} ({value})")


def machine_line() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    import mitmproxy.version

    return (f"Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"mitmproxy {mitmproxy.version.VERSION}; wrk -t1 -c{CONNECTIONS}, {MEASURE_S} s runs "
            f"after {WARMUP_S} s warm-ups, {ROUNDS} rounds; mitmdump on core {DATA_PLANE_CORE}, "
            f"wrk and the responder on core {LOAD_CORE}.")  # fmt: skip


def report_async(rounds: list[dict]) -> None:
    """`--only async`: B and the three E layouts."""
    figures = Figures(rounds)
    print()
    print(machine_line())
    print()
    figures.table(None)
    print_targets(figures.async_targets())


def report(direct: Run, rounds: list[dict], latency: list, memory: tuple[float, float]) -> None:
    figures = Figures(rounds)
    ratio = figures.ratio
    print()
    print(machine_line())
    print()
    figures.table(direct)
    governance_us = statistics.median(r["D+"].cpu_ms - r["D"].cpu_ms for r in rounds) * 1000
    print(
        f"\nD+ - D: {governance_us:+.0f} µs of gateway CPU per request for a conditional meter "
        "and a payload filter (median of the rounds' differences; CPU is the process's user + "
        "system time over the measured run, every thread, so it holds when other work slows "
        "the machine)."
    )
    print()
    report_scale_out(rounds)
    b_p50 = statistics.median(b.p50_ms for b, _ in latency)
    c_p50 = statistics.median(c.p50_ms for _, c in latency)
    b_p99 = statistics.median(b.p99_ms for b, _ in latency)
    c_p99 = statistics.median(c.p99_ms for _, c in latency)
    print("| one connection | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    print(f"| B. bare mitmdump | {b_p50:.2f} | {b_p99:.2f} |")
    print(f"| C. Portcullis | {c_p50:.2f} | {c_p99:.2f} |")
    print(f"| C - B | {c_p50 - b_p50:+.2f} | {c_p99 - b_p99:+.2f} |")
    print()
    first, second = memory
    print(f"Memory (C, a fresh process): RSS {first:.0f} MB after 20k requests, "
          f"{second:.0f} MB after 200k ({(second / first - 1) * 100:+.1f}%).")  # fmt: skip
    f2_f1 = statistics.median(r["F2"].rps / r["F1"].rps for r in rounds)
    print_targets([
        ("C >= 0.90 of B", ratio("C") >= 0.90, f"{ratio('C'):.2f}"),
        ("D >= 0.85 of B", ratio("D") >= 0.85, f"{ratio('D'):.2f}"),
        ("D+ within 0.05 of D", ratio("D") - ratio("D+") <= 0.05,
         f"{ratio('D+'):.2f} vs {ratio('D'):.2f}"),
        *figures.async_targets(),
        ("C p50 <= B p50 + 0.2 ms (one connection)", c_p50 - b_p50 <= 0.2,
         f"{c_p50 - b_p50:+.2f} ms"),
        ("C p99 <= B p99 + 1 ms (one connection)", c_p99 - b_p99 <= 1.0,
         f"{c_p99 - b_p99:+.2f} ms"),
        ("RSS after 200k <= 1.10 x after 20k", second <= first * 1.10, f"{second / first:.2f}x"),
        ("F2 >= 1.6 x F1 (where cores allow; see F's note)", f2_f1 >= 1.6, f"{f2_f1:.2f}x"),
    ])  # fmt: skip
    print("(RSS with 10,000 proxies configured: reported below, no target.)")


def report_scale_out(rounds: list[dict]) -> None:
    """F and C on PostgreSQL, as ratios to C of the same round, and what they mean here."""

    def median(name: str, field: str = "rps") -> float:
        return statistics.median(getattr(r[name], field) for r in rounds)

    def vs_c(name: str) -> float:
        return statistics.median(r[name].rps / r["C"].rps for r in rounds)

    print("| scale-out (same rounds) | req/s | p50 ms | p99 ms | vs C (median of rounds) |")
    print("|---|---:|---:|---:|---:|")
    labels = {
        "C": "C. Portcullis, one process, SQLite",
        "F1": "F1. HAProxy + 1 worker (core 0)",
        "F2": "F2. HAProxy + 2 workers (cores 0 and 1)",
        "C pg": "C on PostgreSQL (one process)",
    }
    for key, label in labels.items():
        vs = "1.00" if key == "C" else f"{vs_c(key):.2f}"
        print(f"| {label} | {median(key):,.0f} | {median(key, 'p50_ms'):.2f} | "
              f"{median(key, 'p99_ms'):.2f} | {vs} |")  # fmt: skip
    f2_f1 = statistics.median(r["F2"].rps / r["F1"].rps for r in rounds)
    cores = os.cpu_count() or 0
    print()
    print(
        f"F2 / F1 = {f2_f1:.2f}x. F1 vs C is the cost of the balancer's hop (HAProxy, not "
        f"pinned, takes CPU from both cores). On this {cores}-core machine F2's second worker "
        "shares core 1 with wrk and the responder, so F2 shows how far a second worker helps "
        "when no core is free for it, not how Portcullis scales. Workers are independent (one "
        "event loop on one core each; they share only the store), so with a core per worker "
        "and the balancer and the load elsewhere, throughput grows with workers until the "
        "store or the balancer is the limit: measure F on such a host. C on PostgreSQL vs C is the "
        "data plane's cost of PostgreSQL over SQLite (the server is not pinned: it competes "
        "with both cores for the batched request-log and telemetry writes)."
    )
    print()


if __name__ == "__main__":
    sys.exit(main())
