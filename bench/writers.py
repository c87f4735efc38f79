#!/usr/bin/env python3
"""What the request-log and telemetry writers cost per row, in the writer thread (issue 19).

    .venv/bin/python bench/writers.py            # µs per row, best of 5
    .venv/bin/python bench/writers.py --process  # and what lever 4 (a writer process) would cost

Builds scenario C's material as the pipeline leaves it (a granted 200 through a proxy with an
API key credential, the bench responder's JSON answer, the gateway's answer headers) and times,
per row: `record.to_row`, the JSON columns' encoding, `access_log.encode`, and a telemetry
`Batch.add`. No store: the insert and commit are the driver's (measured by bench/profile.py).

`--process` times what a writer in another process would need on the event loop instead:
the row's material extracted into plain values (no FlowState/ProxyView may cross: they
reference secrets) and pickled, per row.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addons import access_log, record
from addons.injection import Injection
from addons.snapshot import EMPTY
from addons.state import FlowState
from addons.telemetry_batch import Batch, Sample
from addons.upstream import UpstreamRequest

ROWS = 2000
BODY = b'{"id": 7, "name": "bench", "card": {"number": "4111111111111111"}}'
CALLER = (
    (b"Host", b"127.0.0.1:8080"),
    (b"X-API-Key", b"pk_live_0123456789abcdef0123456789abcdef"),
    (b"User-Agent", b"wrk"),
    (b"Accept", b"*/*"),
)
ANSWER = (
    (b"Content-Type", b"application/json"),
    (b"Content-Length", b"%d" % len(BODY)),
    (b"X-Request-Id", b"req_0123456789abcdef0123"),
    (b"RateLimit-Limit", b"1000"),
    (b"RateLimit-Remaining", b"998"),
    (b"RateLimit-Reset", b"42"),
)


def material() -> record.Material:
    credential = SimpleNamespace(auth_type="apiKey", settings={"in": "header", "name": "X-API-Key"})
    proxy = SimpleNamespace(
        id="prx_0123456789abcdef",
        client_id="cli_0123",
        created_by="usr_01",
        proxy_credential=credential,
    )
    state = FlowState(snapshot=EMPTY, method="GET", path="/items", proxy=proxy)
    state.caller_fields = CALLER
    state.proxy_code = "proxy-access-granted"
    state.injection = Injection(
        "", ("s3cr3t-target-key-0123456789",), frozenset({"authorization"}), frozenset()
    )
    state.upstream = UpstreamRequest("GET", "http://127.0.0.1:9000/items", ())
    state.sent_at = state.received_at + 0.0002
    state.target_answered_at = state.sent_at + 0.0003
    state.upstream_status = 200
    state.finished_at = state.target_answered_at + 0.0001
    state.mark("proxyFound", "requestSent")
    return record.Material(
        state=state, status=200, message=record.LOGGED, request_body=None, response_body=BODY,
        ttl_days=90, body_limit=16384, stage="prod", response_fields=ANSWER,
    )  # fmt: skip


def sample(m: record.Material) -> Sample:
    s = m.state
    return Sample(
        proxy_id=s.proxy.id, client_id=s.proxy.client_id, at=s.finished_at, peer="127.0.0.1",
        forwarded_for=(), proxy_status=200, proxy_ms=0.6, target_status=200, target_ms=0.3,
        bytes=len(BODY), new_connection=False,
    )  # fmt: skip


def per_row(label: str, work, rows: int = ROWS) -> float:
    best = min(timeit.repeat(work, number=1, repeat=5)) / rows * 1e6
    print(f"| {label} | {best:6.1f} |")
    return best


def extracted(m: record.Material) -> tuple:
    """What a writer process would need of a material: plain values, no views."""
    s = m.state
    proxy = s.proxy
    credential = proxy.proxy_credential
    return (
        m.status, m.message, m.request_body, m.response_body, m.ttl_days, m.body_limit, m.stage,
        m.response_fields, s.request_id, s.received_at, s.finished_at, s.method, s.path, s.query,
        s.caller_fields, s.proxy_code, s.is_async, s.streamed, s.response_bytes, s.stream_outcome,
        s.attempt, s.sent_at, s.target_answered_at, s.upstream_status, s.upstream.url,
        dict(s.validation), s.injection.secrets if s.injection else (), proxy.id,
        proxy.client_id, proxy.created_by, credential.auth_type, dict(credential.settings),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", action="store_true")
    parser.add_argument("--latency", type=int, metavar="ROUNDS", default=0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--gc-probe", action="store_true", help="load bench/gc_probe.py")
    parser.add_argument("--stall", type=float, metavar="SECONDS", default=0)
    parser.add_argument("--switch-ms", type=float, default=5.0)
    parser.add_argument("--batch-rows", type=int, default=140)
    parser.add_argument("variants", nargs="*", default=["C"], help="name=ENV=value,... of C")
    options = parser.parse_args()
    if options.stall:
        sys.setswitchinterval(options.switch_ms / 1000)
        stall(options.stall, options.batch_rows)
        return
    if options.latency:
        latency(options.latency, options.variants, options.connections, options.gc_probe)
        return
    materials = [material() for _ in range(ROWS)]
    rows = [record.to_row(m) for m in materials]
    samples = [sample(m) for m in materials]
    print("| per row (writer thread) | µs |\n|---|---:|")
    to_row = per_row("record.to_row", lambda: [record.to_row(m) for m in materials])
    per_row("  response_headers", lambda: [
        record.response_headers(ANSWER, ("s3cr3t-target-key-0123456789",)) for _ in materials
    ])  # fmt: skip
    per_row("  bounded_body", lambda: [
        record.bounded_body(BODY, 16384, ("s3cr3t-target-key-0123456789",)) for _ in materials
    ])  # fmt: skip
    columns = per_row("JSON columns", lambda: [record.column_values(row) for row in rows])
    per_row("access_log.encode", lambda: [access_log.encode(r, time.time()) for r in rows])
    batch = per_row("telemetry Batch.add", lambda: _add_all(samples))
    print(f"| request log row, total (to_row + columns) | {to_row + columns:6.1f} |")
    print(f"| + telemetry | {to_row + columns + batch:6.1f} |")
    if options.process:
        print("\n| lever 4, on the event loop per row | µs |\n|---|---:|")
        extract = per_row("extract plain values", lambda: [extracted(m) for m in materials])
        values = [extracted(m) for m in materials]
        dump = per_row("pickle.dumps", lambda: [pickle.dumps(v, 5) for v in values])
        dumped = [pickle.dumps(v, 5) for v in values]
        print(f"| extract + pickle (loop) | {extract + dump:6.1f} |")
        print(f"| bytes per row | {sum(map(len, dumped)) / ROWS:6.0f} |")
        per_row("pickle.loads (writer process)", lambda: [pickle.loads(d) for d in dumped])


def latency(rounds: int, variants: list[str], connections: int = 1, probe: bool = False) -> None:
    """B and each variant of C alternating, with `connections` (1: the one-connection
    latency, as bench/run.py measures it; more: throughput and CPU per request).

    A variant is `name=ENV=value,ENV=value` (the data plane's environment) or `name`; with
    `probe`, every process (B too) loads bench/gc_probe.py, which also reads the variant's
    PORTCULLIS_SWITCH_INTERVAL_MS and PORTCULLIS_GC_THRESHOLD."""
    from bench import gc_probe
    from bench.configure import configure
    from bench.processes import (
        BENCH,
        DATA_PLANE_CORE,
        LOAD_CORE,
        Processes,
        answers,
        free_port,
        pinned,
        start_admin,
        start_gateway,
        wait_for,
    )
    from bench.run import measure

    processes = Processes(Path(tempfile.mkdtemp(prefix="portcullis-writers-")))
    try:
        up_port, admin_port, bare_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        processes.start(
            "responder", pinned(LOAD_CORE, sys.executable, BENCH / "responder.py", up_port)
        )
        api = start_admin(processes, "admin", admin_port)
        [single] = configure(api, upstream, 1)
        bare_url = f"http://127.0.0.1:{bare_port}/api/x/items"
        probes = {}

        def probed(name: str, env: dict) -> tuple[list[str], dict]:
            if not probe:
                return [], env
            probes[name] = processes.var_dir / f"gc-{name}.txt"
            return ["-s", str(BENCH / "gc_probe.py")], {
                **env,
                "PORTCULLIS_GC_PROBE": str(probes[name]),
            }

        extra, env = probed("B", {})
        bare = processes.start("bare", pinned(
            DATA_PLANE_CORE, Path(sys.executable).parent / "mitmdump", "-q",
            "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1", "-p", bare_port,
            "--set", "connection_strategy=lazy", "--set", "stream_large_bodies=1m", *extra,
        ), env)  # fmt: skip
        urls = {"B": (bare_url, {}, bare.pid)}
        for variant in variants:
            name, _, settings = variant.partition("=")
            env = dict(item.split("=", 1) for item in settings.split(",") if item)
            port = free_port()
            extra, env = probed(name, env)
            gateway = start_gateway(processes, f"gw-{name}", port, *extra, env=env)
            url = f"http://127.0.0.1:{port}/api/{single.id}/items"
            wait_for(lambda u=url: answers(u, {"X-API-Key": single.key}), name)
            key = {"script": "key.lua", "env": {"BENCH_KEY": single.key}}
            urls[name] = (url, key, gateway.pid)
        wait_for(lambda: answers(bare_url), "bare mitmdump")
        results: dict[str, list] = {name: [] for name in urls}
        for number in range(rounds):
            for name, (url, kwargs, pid) in urls.items():
                run = measure(url, pid, connections=connections, **kwargs)
                results[name].append(run)
                print(f"round {number + 1} {name:12} p50 {run.p50_ms:6.3f} p99 {run.p99_ms:6.3f} "
                      f"rps {run.rps:7.0f} cpu {run.cpu_ms:.3f} ms", flush=True)  # fmt: skip
        print(f"\n| -c{connections} | p50 ms | p99 ms | p99 min–max | req/s | CPU ms/req |")
        print("|---|---:|---:|---|---:|---:|")
        for name, runs in results.items():
            p99 = sorted(r.p99_ms for r in runs)
            p50 = statistics.median(r.p50_ms for r in runs)
            spread = f"{p99[0]:.2f}–{p99[-1]:.2f}"
            rps = statistics.median(r.rps for r in runs)
            cpu = statistics.median(r.cpu_ms for r in runs)
            print(f"| {name} | {p50:.3f} | {statistics.median(p99):.3f} | {spread} | {rps:.0f} "
                  f"| {cpu:.3f} |")  # fmt: skip
        for name, path in probes.items():
            print(f"{name}: {gc_probe.summary(str(path)) if path.exists() else 'no collections'}")
    finally:
        processes.stop()


def stall(seconds: float, rows_per_batch: int) -> None:
    """How late the event loop runs while the request-log and telemetry writers flush real
    batches into a SQLite store, by the interpreter's switch interval (--switch-ms): a 1 ms
    ticker on an asyncio loop records each tick's lateness; batches of `rows_per_batch`
    rows are submitted every 0.2 s, as the loop would at that request rate."""
    import asyncio

    from addons.batch_writer import BatchWriter
    from models import Base
    from models.store import make_engine

    path = Path(tempfile.mkdtemp(prefix="portcullis-stall-")) / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    logs = BatchWriter(engine, lambda session, items: record.write_rows(session, items), "log")
    counts = BatchWriter(engine, lambda session, items: _write_samples(session, items), "tel")
    logs.start()
    counts.start()
    lateness: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        next_submit = loop.time()
        while loop.time() < end:
            if loop.time() >= next_submit:
                for _ in range(rows_per_batch):
                    m = material()
                    logs.submit(m)
                    counts.submit(sample(m))
                next_submit += 0.2
            planned = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - planned)

    asyncio.run(ticker())
    logs.stop()
    counts.stop()
    lateness.sort()
    pick = lambda q: lateness[min(len(lateness) - 1, int(q * len(lateness)))] * 1000  # noqa: E731
    print(f"switch {sys.getswitchinterval() * 1000:.2f} ms: "
          f"loop lateness p50 {pick(0.5):.3f} p99 {pick(0.99):.3f} p99.9 {pick(0.999):.3f} "
          f"max {lateness[-1] * 1000:.2f} ms; over 2 ms "
          f"{sum(x > 0.002 for x in lateness) / len(lateness) * 100:.2f} %; batch "
          f"{(logs.last_batch_seconds or 0) * 1000:.1f} ms", flush=True)  # fmt: skip


def _write_samples(session, items) -> None:
    batch = Batch(now=time.time())
    for item in items:
        batch.add(item)
    batch.write(session)


def _add_all(samples: list[Sample]) -> None:
    batch = Batch(now=time.time())
    for s in samples:
        batch.add(s)


if __name__ == "__main__":
    main()
