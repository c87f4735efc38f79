"""RSS of a data-plane process with 10,000 proxies configured (issue 19).

Starts a real admin on a throwaway SQLite store, then a `run_proxy.py` on the
empty store (its baseline RSS once the configuration is loaded), fills the
store with 10,000 proxies the way bench/core_api.py does (bulk insert through
the models, references made through the Core API), starts a fresh
`run_proxy.py` and prints its RSS once its log says all of them are loaded.

    .venv/bin/python -m bench.rss_proxies [--proxies N]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.core_api import make_user, populate  # noqa: E402
from bench.processes import DATA_PLANE_CORE, free_port, pinned, rss_mb  # noqa: E402
from tests import stores  # noqa: E402
from tests.support import start_admin, stop_process  # noqa: E402

PROXIES = 10_000
LOAD_TIMEOUT_S = 180
LOADED = re.compile(r"configuration version -?\d+ loaded \((\d+) proxies\)")


def loaded_rss(env: dict, log_path: Path, proxies: int) -> float:
    """RSS in MB of a fresh data plane once its snapshot holds `proxies` proxies."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(DATA_PLANE_CORE, sys.executable, "run_proxy.py", "--port", free_port()),
            cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not any(int(n) >= proxies for n in LOADED.findall(log_path.read_text("utf-8"))):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the data plane did not load {proxies} proxies:\n"
                                   f"{log_path.read_text('utf-8')}")  # fmt: skip
            time.sleep(0.2)  # polling the process's log for its load line
        time.sleep(1)  # let the start-up's garbage settle before reading RSS
        return rss_mb(process.pid)
    finally:
        stop_process(process)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, default=PROXIES)
    count = parser.parse_args(argv).proxies
    with tempfile.TemporaryDirectory(prefix="portcullis-bench-rss-") as folder:
        server = start_admin(Path(folder) / "admin")
        try:
            api = make_user(server)
            empty = loaded_rss(server.env, Path(folder) / "empty.log", 0)
            populate(server, api, count)
            full = loaded_rss(server.env, Path(folder) / "full.log", count)
        finally:
            server.stop()
            stores.stop_server()
    print(f"RSS of a data-plane process: {empty:.0f} MB with no proxies, {full:.0f} MB with "
          f"{count:,} proxies configured ({(full - empty) * 1024 / count:.1f} KB per proxy).",
          flush=True)  # fmt: skip
    return empty, full


if __name__ == "__main__":
    main()
