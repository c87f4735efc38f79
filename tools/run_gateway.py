#!/usr/bin/env python3
"""Several data-plane workers behind HAProxy on one host: what `make run WORKERS=N` runs.

    python tools/run_gateway.py --workers N [--proxy-port 8080] [--admin-port 5000]
                                [--worker-port-base 8081] [--stats-port 8404]
                                [--metrics-port-base 9101]

Starts the admin (`run_admin.py serve --no-migrate`), N `run_proxy.py` workers on
127.0.0.1:BASE .. BASE+N-1 (with --metrics-port-base M, worker n serves Prometheus
`GET /metrics` on 127.0.0.1:M+n-1: `portcullis_metrics_port`), and HAProxy on the
public proxy port with a config written from deploy/haproxy.cfg.template to
$PORTCULLIS_VAR_DIR/haproxy.cfg (var/).
Extra options come from the environment as `make run` gives them: PORTCULLIS_RUN_ADMIN_ARGS
and PORTCULLIS_RUN_PROXY_ARGS (split as a shell would). Every line a process prints
is shown with its name in front.

Ctrl-C or TERM stops everything. The admin or HAProxy exiting stops everything. A
worker that dies after it listened is restarted (backoff 1 s doubling to 30 s) while
HAProxy sends its traffic to the others; a worker that exits before it ever listened
(a bad option) stops everything, since its siblings would fail the same way.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "haproxy.cfg.template"
TRUSTED_OPTION = "portcullis_trusted_proxies"
METRICS_OPTION = "portcullis_metrics_port"
# HAProxy connects to the workers from this loopback address, the only one they trust for
# X-Forwarded-For: a local caller talking to a worker port directly cannot pose as someone.
DEFAULT_BALANCER_SOURCE = "127.0.0.2"
WORKER_HOST = "127.0.0.1"
LISTENING = re.compile(r"listening at ")
ANSWER_LINE = re.compile(r"^\s+<< ")  # mitmdump's line for the answer to the flow above
RESTART_BACKOFF_S = (1, 2, 4, 8, 16, 30)
STABLE_AFTER_S = 60  # a worker up this long starts its backoff afresh
STOP_TIMEOUT_S = 10
POLL_S = 0.2


@dataclass
class Layout:
    """Ports and addresses of one host's gateway."""

    workers: int
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 8080
    admin_port: int = 5000
    worker_port_base: int = 8081
    stats_host: str = "127.0.0.1"
    stats_port: int = 8404
    balancer_source: str = DEFAULT_BALANCER_SOURCE
    metrics_port_base: int = 0  # 0: the workers serve no /metrics

    def worker_ports(self) -> list[int]:
        return [self.worker_port_base + n for n in range(self.workers)]

    def metrics_ports(self) -> list[int | None]:
        """Each worker's metrics port, in worker order (None: off)."""
        base = self.metrics_port_base
        return [base + n if base else None for n in range(self.workers)]


def metrics_args(proxy_args: list[str], port: int | None) -> list[str]:
    """The `--set` giving one worker its own metrics port (none when `port` is None).

    A port set in the user's proxy arguments would be the same for every worker (only one
    could listen on it): refused, --metrics-port-base is the way."""
    for at, arg in enumerate(proxy_args):
        spec = proxy_args[at + 1] if arg == "--set" and at + 1 < len(proxy_args) else arg
        if spec.removeprefix("--set=").partition("=")[0] == METRICS_OPTION:
            raise SystemExit(
                f"run_gateway.py: set {METRICS_OPTION} with --metrics-port-base, not in the "
                "proxy arguments (every worker needs a port of its own)"
            )
    return [] if port is None else ["--set", f"{METRICS_OPTION}={port}"]


def haproxy_config(layout: Layout, template: str) -> str:
    """The HAProxy config for `layout` from the template's ${...} fields."""
    servers = "\n".join(
        f"    server worker{n} {WORKER_HOST}:{port}"
        for n, port in enumerate(layout.worker_ports(), start=1)
    )
    fields = {k: str(v) for k, v in vars(layout).items()}
    return Template(template).substitute(fields, servers=servers)


def with_trusted_balancer(proxy_args: list[str], source: str) -> list[str]:
    """`proxy_args` with the balancer's address added to `portcullis_trusted_proxies`
    (merged into the user's own value, since mitmproxy stalls on an option given twice)."""
    kept, trusted = [], [f"{source}/32"]
    at = 0
    while at < len(proxy_args):
        arg = proxy_args[at]
        if arg == "--set" and at + 1 < len(proxy_args):
            spec, width = proxy_args[at + 1], 2
        elif arg.startswith("--set="):
            spec, width = arg.removeprefix("--set="), 1
        else:
            kept.append(arg)
            at += 1
            continue
        name, _, value = spec.partition("=")
        if name == TRUSTED_OPTION:
            trusted += [v.strip() for v in value.split(",") if v.strip()]
        else:
            kept += proxy_args[at : at + width]
        at += width
    return [*kept, "--set", f"{TRUSTED_OPTION}={','.join(trusted)}"]


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise SystemExit("run_gateway.py: haproxy is not installed (`make haproxy` installs it)")
    return found


@dataclass
class Child:
    """One process of the gateway and its output relay."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    quiet: re.Pattern | None = None  # lines not shown (with the answer line after them)

    def start(self, env: dict) -> None:
        self.ready = threading.Event()
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._relay, args=(self.process,), daemon=True).start()

    def _relay(self, process: subprocess.Popen) -> None:
        prefix = f"[{self.name}] "
        answer_of_quiet = False
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if LISTENING.search(line):
                self.ready.set()
            if answer_of_quiet and ANSWER_LINE.match(line):
                continue
            answer_of_quiet = self.quiet is not None and bool(self.quiet.search(line))
            if not answer_of_quiet:
                print(prefix + line, flush=True)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


class Gateway:
    """The admin, the workers and HAProxy, supervised together."""

    def __init__(self, layout: Layout, admin_args: list[str], proxy_args: list[str]):
        self.layout = layout
        var_dir = Path(os.environ.get("PORTCULLIS_VAR_DIR") or ROOT / "var")
        var_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = var_dir / "haproxy.cfg"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        py = sys.executable
        self.admin = Child(
            "admin",
            [
                py,
                "run_admin.py",
                "serve",
                "--no-migrate",
                "--port",
                str(layout.admin_port),
                *admin_args,
            ],
        )
        worker_args = with_trusted_balancer(proxy_args, layout.balancer_source)
        balancer = re.escape(layout.balancer_source)
        # The balancer's health checks (one a second per worker) and its connections.
        quiet = re.compile(
            rf"\[{balancer}:\d+\] client (connect|disconnect)$"
            rf"|^{balancer}:\d+: \S+ \S+/_portcullis/health"
        )
        self.workers = [
            Child(
                f"worker{n}",
                [
                    py,
                    "run_proxy.py",
                    "--listen-host",
                    WORKER_HOST,
                    "--port",
                    str(port),
                    *worker_args,
                    *metrics_args(proxy_args, metrics_port),
                ],
                quiet=quiet,
            )
            for n, (port, metrics_port) in enumerate(
                zip(layout.worker_ports(), layout.metrics_ports(), strict=True), start=1
            )
        ]
        self.haproxy = Child("haproxy", [haproxy_binary(), "-db", "-f", str(self.config_path)])

    def write_config(self) -> None:
        self.config_path.write_text(haproxy_config(self.layout, TEMPLATE.read_text()))
        check = subprocess.run(
            [self.haproxy.command[0], "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise SystemExit(f"run_gateway.py: {self.config_path} is invalid:\n{check.stderr}")

    def children(self) -> list[Child]:
        return [self.admin, *self.workers, self.haproxy]

    def run(self) -> int:
        self.write_config()
        for child in self.children():
            child.start(self.env)
            print(f"run_gateway.py: {child.name} started (pid {child.process.pid})", flush=True)
        ports = ", ".join(
            f"worker{n} on {WORKER_HOST}:{p}"
            + (f" (metrics on {WORKER_HOST}:{m}/metrics)" if m else "")
            for n, (p, m) in enumerate(
                zip(self.layout.worker_ports(), self.layout.metrics_ports(), strict=True), start=1
            )
        )
        print(
            f"run_gateway.py: HAProxy on {self.layout.proxy_host}:{self.layout.proxy_port} in "
            f"front of {ports}; its status page on "
            f"http://{self.layout.stats_host}:{self.layout.stats_port}/",
            flush=True,
        )
        while True:
            for child in (self.admin, self.haproxy):
                code = child.exited()
                if code is not None:
                    print(f"run_gateway.py: {child.name} exited ({code}); stopping", flush=True)
                    return code or 1
            for worker in self.workers:
                code = self.supervise(worker)
                if code is not None:
                    return code
            time.sleep(POLL_S)  # supervising: a child's exit is noticed within this

    def supervise(self, worker: Child) -> int | None:
        """Restart `worker` if it died after listening; an exit code if everything must stop."""
        now = time.monotonic()
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                worker.restart_at = None
                worker.start(self.env)
                print(
                    f"run_gateway.py: {worker.name} restarted (pid {worker.process.pid})",
                    flush=True,
                )
            return None
        code = worker.exited()
        if code is None:
            return None
        if not worker.ready.is_set():
            print(
                f"run_gateway.py: {worker.name} exited ({code}) before it listened; stopping",
                flush=True,
            )
            return code or 1
        if now - worker.started_at > STABLE_AFTER_S:
            worker.failures = 0
        delay = RESTART_BACKOFF_S[min(worker.failures, len(RESTART_BACKOFF_S) - 1)]
        worker.failures += 1
        worker.restart_at = now + delay
        print(
            f"run_gateway.py: {worker.name} (pid {worker.process.pid}) exited ({code}); "
            f"HAProxy sends its traffic to the others; restart in {delay} s",
            flush=True,
        )
        return None

    def stop(self) -> None:
        running = [c.process for c in self.children() if c.exited() is None and c.process]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--proxy-port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=5000)
    parser.add_argument("--worker-port-base", type=int, default=8081)
    parser.add_argument("--stats-port", type=int, default=8404)
    parser.add_argument("--balancer-source", default=DEFAULT_BALANCER_SOURCE)
    parser.add_argument(
        "--metrics-port-base",
        type=int,
        default=0,
        help="worker n serves GET /metrics on 127.0.0.1:BASE+n-1 (default 0: off)",
    )
    options = parser.parse_args(argv)
    if options.workers < 1:
        parser.error("--workers must be at least 1")
    if options.metrics_port_base and not 0 < options.metrics_port_base <= 65536 - options.workers:
        parser.error("--metrics-port-base: every worker's port must be 1..65535")
    layout = Layout(
        workers=options.workers,
        proxy_port=options.proxy_port,
        admin_port=options.admin_port,
        worker_port_base=options.worker_port_base,
        stats_port=options.stats_port,
        balancer_source=options.balancer_source,
        metrics_port_base=options.metrics_port_base,
    )
    gateway = Gateway(
        layout,
        shlex.split(os.environ.get("PORTCULLIS_RUN_ADMIN_ARGS", "")),
        shlex.split(os.environ.get("PORTCULLIS_RUN_PROXY_ARGS", "")),
    )
    # Both set explicitly: a shell may start us with SIGINT ignored (a background job).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        return gateway.run()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        gateway.stop()


if __name__ == "__main__":
    sys.exit(main())
