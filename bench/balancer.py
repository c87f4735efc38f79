"""Bench helpers for scenario F (HAProxy in front of workers) and for C on PostgreSQL.

The HAProxy config comes from the same template and code as `make run WORKERS=N`
(tools/run_gateway.py); the throwaway PostgreSQL server is the tests' (tests/stores.py).
"""

from __future__ import annotations

import socket
from pathlib import Path

from tests.stores import PostgresServer
from tools.run_gateway import TEMPLATE, Layout, haproxy_binary, haproxy_config


def consecutive_free_ports(count: int, attempts: int = 50) -> int:
    """A base port with `count` free ports on 127.0.0.1 from it."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def haproxy_command(
    var_dir: Path, name: str, workers: int, worker_port_base: int, port: int, stats_port: int
) -> list[str]:
    """The command of an HAProxy on 127.0.0.1:`port` in front of `workers` workers on
    consecutive ports from `worker_port_base`, its config written to var_dir/`name`.cfg."""
    layout = Layout(
        workers=workers, proxy_port=port, worker_port_base=worker_port_base, stats_port=stats_port
    )
    path = var_dir / f"{name}.cfg"
    path.write_text(haproxy_config(layout, TEMPLATE.read_text()))
    return [haproxy_binary(), "-db", "-f", str(path)]


def trusted_balancer_args() -> list[str]:
    """What `make run WORKERS=N` gives each worker so it believes HAProxy's X-Forwarded-For."""
    return ["--set", f"portcullis_trusted_proxies={Layout(workers=1).balancer_source}/32"]


def start_postgresql() -> tuple[PostgresServer, str]:
    """A throwaway PostgreSQL server (stopped at exit) and the URL of a fresh database on it."""
    server = PostgresServer().start()
    return server, server.create_database()
