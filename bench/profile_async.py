"""Where an Async API accept's CPU goes: `/async/` enqueue under load, sampled by py-spy.

    python bench/profile_async.py [--seconds 15] [--out var/profile-async] [-- --set ...]

As bench/profile.py, but wrk posts bench/enqueue.lua's small JSON body to an
`/async/` URL of a data plane started with `--no-dispatcher` (add
`--dispatcher on` to profile accept while the same process delivers). Prints
shares by area and by function, and the CPU per accepted request.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profile
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
from bench.run import cpu_seconds

# The accept path's own parts first; the rest as bench/profile.py names them.
profile.AREAS = (
    ("addons/async_queue.py", "async accept (addons/async_queue.py)"),
    ("addons/job_store.py", "job store (worker thread)"),
    ("sqlalchemy/", "SQLAlchemy (job store, writers)"),
    ("sqlite3", "SQLAlchemy (job store, writers)"),
    ("addons/dispatcher.py", "dispatcher"),
    ("addons/lease_keeper.py", "dispatcher"),
    *profile.AREAS,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--dispatcher", choices=("off", "on"), default="off")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "profile-async")
    parser.add_argument("extra", nargs="*", help="more mitmdump arguments (--set ...)")
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    processes = Processes(Path(tempfile.mkdtemp(prefix="portcullis-profile-async-")))
    try:
        up_port, admin_port, gw_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        processes.start(
            "responder", pinned(LOAD_CORE, sys.executable, BENCH / "responder.py", up_port)
        )
        api = start_admin(processes, "admin", admin_port)
        [single] = configure(api, upstream, 1)
        mode = ["--no-dispatcher"] if options.dispatcher == "off" else []
        gateway = start_gateway(processes, "gateway", gw_port, *mode, *options.extra)
        check = f"http://127.0.0.1:{gw_port}/api/{single.id}/items"
        wait_for(lambda: answers(check, {"X-API-Key": single.key}), "Portcullis")
        url = f"http://127.0.0.1:{gw_port}/async/{single.id}/events"
        load = pinned(LOAD_CORE, "wrk", "-t1", "-c50", f"-d{options.seconds + 4}s", "-s",
                      str(BENCH / "enqueue.lua"), url)  # fmt: skip
        wrk = subprocess.Popen(load, env={"BENCH_KEY": single.key, "PATH": "/usr/bin:/bin"},
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(2)  # wrk's warm-up before sampling; not a synchronisation
        before = cpu_seconds(gateway.pid)
        raw = options.out / "collapsed.txt"
        subprocess.run(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(gateway.pid),
             "--duration", str(options.seconds), "--rate", "500", "--threads",
             "--format", "raw", "--output", str(raw), "--nonblocking"],
            check=True, capture_output=True,
        )  # fmt: skip
        output = wrk.communicate()[0]
        used = cpu_seconds(gateway.pid) - before
        print(output)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
        # CPU over the sampled span / requests in it (the rate is steady past the warm-up)
        per_request = used * 1000 / (rps * options.seconds)
        print(f"CPU per accepted request: {per_request:.3f} ms (over the {options.seconds} s "
              "sampled; py-spy --nonblocking adds a little)")  # fmt: skip
        profile.summarize(raw, options.top)
    finally:
        processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
