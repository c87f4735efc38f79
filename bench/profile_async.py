"""Where an Async API accept's CPU goes: `/async/` enqueue under load, sampled by py-spy.

    python bench/profile_async.py [--seconds 15] [--out var/profile-async] [-- --set ...]

As bench/profile.py, but wrk posts bench/enqueue.lua's small JSON body to an
`/async/` URL of a data plane started with `--no-dispatcher` (add
`--dispatcher on` to profile accept while the same process delivers). Prints
shares by area and by function, and the CPU per accepted request.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profile
from bench.processes import ROOT, Processes

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
        mode = ["--no-dispatcher"] if options.dispatcher == "off" else []
        base, single, gateway = profile.start_single(processes, *mode, *options.extra)
        url = f"{base}/async/{single.id}/events"
        run = profile.sample(
            url, "enqueue.lua", single.key, gateway.pid, options.seconds, options.out
        )
        print(run.wrk_output)
        print(f"CPU per accepted request: {run.cpu_ms_per_request:.3f} ms (over the "
              f"{options.seconds} s sampled; py-spy --nonblocking adds a little)")  # fmt: skip
        profile.summarize(run.collapsed, options.top)
    finally:
        processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
