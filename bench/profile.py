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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.configure import configure
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


def area(stack: list[str]) -> str:
    for frame in reversed(stack):
        for marker, name in AREAS:
            if marker in frame:
                return name
    return "other"


def summarize(raw: Path, top: int) -> None:
    """Print the share of samples by area, and by function (self time)."""
    by_area: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        stack = stack_text.split(";")[1:]  # the first element names the thread
        total += count
        by_area[area(stack)] += count
        by_function[stack[-1] if stack else "?"] += count
    print(f"\n{total} samples\n\n| area | share |\n|---|---:|")
    for name, count in by_area.most_common():
        print(f"| {name} | {100 * count / total:.1f} % |")
    print("\n| function (self time) | share |\n|---|---:|")
    for name, count in by_function.most_common(top):
        print(f"| `{name}` | {100 * count / total:.1f} % |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "profile")
    parser.add_argument("extra", nargs="*", help="more mitmdump arguments (--set ...)")
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    processes = Processes(Path(tempfile.mkdtemp(prefix="portcullis-profile-")))
    try:
        up_port, admin_port, gw_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        processes.start(
            "responder", pinned(LOAD_CORE, sys.executable, BENCH / "responder.py", up_port)
        )
        api = start_admin(processes, "admin", admin_port)
        [single] = configure(api, upstream, 1)
        gateway = start_gateway(processes, "gateway", gw_port, *options.extra)
        url = f"http://127.0.0.1:{gw_port}/api/{single.id}/items"
        wait_for(lambda: answers(url, {"X-API-Key": single.key}), "Portcullis")
        load = pinned(LOAD_CORE, "wrk", "-t1", "-c50", f"-d{options.seconds + 4}s", "-s",
                      str(BENCH / "key.lua"), url)  # fmt: skip
        wrk = subprocess.Popen(load, env={"BENCH_KEY": single.key, "PATH": "/usr/bin:/bin"},
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(2)  # wrk's warm-up before sampling; not a synchronisation
        raw = options.out / "collapsed.txt"
        subprocess.run(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(gateway.pid),
             "--duration", str(options.seconds), "--rate", "500", "--threads",
             "--format", "raw", "--output", str(raw), "--nonblocking"],
            check=True, capture_output=True,
        )  # fmt: skip
        print(wrk.communicate()[0])
        summarize(raw, options.top)
    finally:
        processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
