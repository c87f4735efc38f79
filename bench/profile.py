"""Where a request's CPU goes: scenario C under load, sampled by py-spy.

    python bench/profile.py [--seconds 15] [--out var/profile]

Starts the bench responder, an admin with one proxy configured as in scenario C,
and one data-plane process (pinned as in `make bench`); runs wrk against it while
py-spy samples every thread (`--idle` off: only time on a CPU counts). Prints the
share of samples by area (mitmproxy's layers, the upstream client, each addon, the
writer threads, ...) and the functions with the most time of their own, and leaves
the collapsed stacks in `--out` for flame graphs (`py-spy`'s `--format raw`).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.configure import Proxy, configure
from bench.processes import (
    BENCH,
    LOAD_CORE,
    ROOT,
    Processes,
    answers,
    free_port,
    pinned,
    start_admin,
    start_gateway,
    wait_for,
)
from bench.run import cpu_seconds

# Areas by the file a sampled frame is in, the first match wins; frames are read from the
# innermost out, so time is charged to the innermost frame that names an area.
AREAS = (
    ("addons/batch_writer.py", "writer threads (request log, telemetry)"),
    ("sqlalchemy/", "writer threads (request log, telemetry)"),
    ("aiohttp/", "upstream client (aiohttp)"),
    ("addons/upstream", "upstream client (ours)"),
    ("addons/lean_upstream", "upstream client (ours)"),
    ("httptools", "upstream client (ours)"),
    ("addons/", "gateway stages (addons/)"),
    ("models/", "gateway models (models/)"),
    ("mitmproxy/addonmanager.py", "mitmproxy hook dispatch"),
    ("mitmproxy/proxy/layers/http/_http1", "mitmproxy HTTP/1 layer"),
    ("h11/", "mitmproxy HTTP/1 layer"),
    ("mitmproxy/proxy/", "mitmproxy proxy core"),
    ("mitmproxy/", "mitmproxy other"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
)


# Leaves of the timed waits of the gateway's background threads (writers, config poll).
IDLE_LEAVES = ("BatchWriter._take (", "Condition.wait (", "Event.wait (", "SimpleQueue.get (")
IDLE_THREADS = ("BatchWriter._run (", "SnapshotSource._run (", "Thread.run (")


def area(stack: list[str]) -> str:
    for frame in reversed(stack):
        for marker, name in AREAS:
            if marker in frame:
                return name
    return "other"


def waiting(stack: list[str]) -> bool:
    """A thread blocked in a timed wait: py-spy counts some of those as active (a writer's
    `SimpleQueue.get(timeout=...)`, `Event.wait`), though they use no CPU."""
    leaf = stack[-1] if stack else ""
    return leaf.startswith(IDLE_LEAVES) and any(frame.startswith(IDLE_THREADS) for frame in stack)


def summarize(raw: Path, top: int) -> None:
    """Print the share of samples by area, and by function (self time); idle waits left out."""
    by_area: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        stack = stack_text.split(";")[1:]  # the first element names the thread
        if waiting(stack):
            idle += count
            continue
        total += count
        by_area[area(stack)] += count
        by_function[stack[-1] if stack else "?"] += count
    print(f"\n{total} samples ({idle} more of idle waits left out)\n")
    print("| area | share |\n|---|---:|")
    for name, count in by_area.most_common():
        print(f"| {name} | {100 * count / total:.1f} % |")
    print("\n| function (self time) | share |\n|---|---:|")
    for name, count in by_function.most_common(top):
        print(f"| `{name}` | {100 * count / total:.1f} % |")


@dataclass(frozen=True)
class Profiled:
    """One sampled run: what wrk printed, the process's CPU per request, the stacks."""

    wrk_output: str
    cpu_ms_per_request: float
    collapsed: Path


def start_single(processes: Processes, *gateway_args: str) -> tuple[str, Proxy, subprocess.Popen]:
    """The bench responder, an admin with scenario C's one proxy, and a data plane (pinned
    as in `make bench`) serving it; the data plane's base URL, the proxy and its process."""
    up_port, admin_port, gw_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    processes.start("responder", pinned(LOAD_CORE, sys.executable, BENCH / "responder.py", up_port))
    api = start_admin(processes, "admin", admin_port)
    [single] = configure(api, upstream, 1)
    gateway = start_gateway(processes, "gateway", gw_port, *gateway_args)
    base = f"http://127.0.0.1:{gw_port}"
    check = f"{base}/api/{single.id}/items"
    wait_for(lambda: answers(check, {"X-API-Key": single.key}), "Portcullis")
    return base, single, gateway


def sample(url: str, script: str, key: str, pid: int, seconds: int, out: Path) -> Profiled:
    """wrk (`script` from bench/, 50 connections) against `url` while py-spy samples process
    `pid` for `seconds` after a warm-up; the stacks in `out`/collapsed.txt."""
    out.mkdir(parents=True, exist_ok=True)
    load = pinned(LOAD_CORE, "wrk", "-t1", "-c50", f"-d{seconds + 4}s", "-s",
                  str(BENCH / script), url)  # fmt: skip
    wrk = subprocess.Popen(load, env={"BENCH_KEY": key, "PATH": "/usr/bin:/bin"},
                           stdout=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(2)  # wrk's warm-up before sampling; not a synchronisation
    before = cpu_seconds(pid)
    raw = out / "collapsed.txt"
    subprocess.run(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         "--duration", str(seconds), "--rate", "500", "--threads",
         "--format", "raw", "--output", str(raw), "--nonblocking"],
        check=True, capture_output=True,
    )  # fmt: skip
    used = cpu_seconds(pid) - before
    output = wrk.communicate()[0]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    # CPU over the sampled span / requests in it (the rate is steady past the warm-up)
    return Profiled(output, used * 1000 / (rps * seconds), raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "profile")
    parser.add_argument("extra", nargs="*", help="more mitmdump arguments (--set ...)")
    options = parser.parse_args(argv)
    processes = Processes(Path(tempfile.mkdtemp(prefix="portcullis-profile-")))
    try:
        base, single, gateway = start_single(processes, *options.extra)
        url = f"{base}/api/{single.id}/items"
        run = sample(url, "key.lua", single.key, gateway.pid, options.seconds, options.out)
        print(run.wrk_output)
        print(f"CPU per request: {run.cpu_ms_per_request:.3f} ms (py-spy adds a little)")
        summarize(run.collapsed, options.top)
    finally:
        processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
