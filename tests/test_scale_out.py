"""Two real data-plane processes (`run_proxy.py`) on one store, as behind a load balancer.

- Async jobs accepted through both, one process SIGKILLed while it delivers: every job
  ends `succeeded`; a target that honours `Idempotency-Key` carries out each job once.
  The only jobs that physically arrive twice are ones the killed process had in flight,
  and every arrival of a job carries that job's one key.
- Telemetry written by both processes adds up to exactly the requests sent, at every
  resolution, after the operator's `run_admin.py roll-up-telemetry`.
- A configuration change answered by the admin is live in both processes within a second,
  with traffic flowing through both while it happens.

Runs on SQLite too: several processes on one host may share one SQLite file.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.async_support import AUTH, job_of, schedule, submit, user_api
from tests.proxy_support import ProxyServer, Setup, call, start_proxies
from tests.support import AdminServer, Api, run_admin_cli, run_admin_cli_in_process, start_admin
from tests.upstream import RecordingUpstream

JOBS = 400
# Deliveries of 250 ms, 8 at a time per process (about 6 s for all once they may go); the
# target holds the first ones until every job is accepted, so the kill lands in the middle
# of delivery, with the victim's 8 in flight, however slow acceptance is on a busy machine.
DELIVERY_DELAY_MS = 250
CONCURRENCY = 8
# Short leases so the survivor takes the killed process's jobs over quickly; attempts may
# take long (no timeout-and-retry duplicates under load: the kill is the only cause).
OPTIONS = schedule(
    portcullis_async_lease_ms=2000,
    portcullis_async_attempt_timeout_ms=30000,
    portcullis_async_concurrency=CONCURRENCY,
)
ALL_DONE_S = 120
LIVE_WITHIN_S = 1.0
TELEMETRY_S = 30
KEY = "idempotency-key"


@contextmanager
def own_store(directory: Path) -> Iterator[tuple[AdminServer, Api]]:
    """An admin on a store of its own, and a user of it."""
    server = start_admin(directory / "admin")
    try:
        yield server, user_api(server)
    finally:
        server.stop()


@contextmanager
def two_proxies(server: AdminServer, directory: Path) -> Iterator[list[ProxyServer]]:
    proxies = start_proxies(server, [directory / name for name in ("one", "two")], *OPTIONS)
    try:
        yield proxies
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def store(tmp_path) -> tuple[AdminServer, Api]:
    """A store of its own: no other test's processes dispatch its jobs (the SIGKILL test)."""
    with own_store(tmp_path) as made:
        yield made


@pytest.fixture
def pair(store, tmp_path) -> list[ProxyServer]:
    with two_proxies(store[0], tmp_path) as proxies:
        yield proxies


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> tuple[AdminServer, Api]:
    """A store for the tests that kill no process; each makes a proxy of its own on it."""
    with own_store(tmp_path_factory.mktemp("scale-out")) as made:
        yield made


@pytest.fixture(scope="module")
def shared_pair(shared_store, tmp_path_factory) -> list[ProxyServer]:
    with two_proxies(shared_store[0], tmp_path_factory.mktemp("scale-out-pair")) as proxies:
        yield proxies


@pytest.fixture
def target():
    """A recording upstream of this test's own, so its counts are this test's alone."""
    with RecordingUpstream() as server:
        yield server


def poll(check, timeout: float, what: str):
    """`check()`'s first truthy result, polled until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)  # polling real processes for a real change, bounded by the deadline


def served_by_all(proxies: list[ProxyServer], path: str, sent: Counter | None = None) -> None:
    """Until each process answers 200 on `path`; `sent` counts the requests it served (the
    404s before a process knows the proxy belong to no proxy's telemetry)."""
    for proxy in proxies:

        def ok(proxy=proxy) -> bool:
            served = call(proxy, "GET", path, headers=AUTH).status_code == 200
            if sent is not None and served:
                sent[proxy.base_url] += 1
            return served

        poll(ok, 10, f"{proxy.base_url} serving {path}")


# --- async: SIGKILL in the middle of delivery ------------------------------------------


def test_async_jobs_through_two_processes_survive_a_sigkill(store, target, pair):
    api = store[1]
    made = Setup(api, target)
    served_by_all(pair, f"/api/{made.id}/status/200")
    survivor, victim = pair
    paths = [f"/job{n}-{uuid.uuid4().hex[:8]}/status/200" for n in range(JOBS)]

    def accept(number: int) -> tuple[str, str]:
        proxy = pair[number % 2]  # spread over both processes
        path = paths[number]
        response = submit(proxy, made, f"{path}?delay_ms={DELIVERY_DELAY_MS}&held=1", data=b"x")
        assert response.status_code == 202, response.text
        return f"/base{path}", response.json()["requestId"]

    target.gate.clear()  # the first deliveries wait at the target until every job is in
    try:
        with ThreadPoolExecutor(8) as pool:
            accepted = dict(pool.map(accept, range(JOBS)))
        assert len(set(accepted.values())) == JOBS

        # Kill the victim in the middle of delivery: each process has its first 8 in flight.
        def job_arrivals() -> int:
            return sum(1 for received in list(target.received) if received.path in accepted)

        poll(lambda: job_arrivals() >= CONCURRENCY * 2, 60, "first deliveries")
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        assert job_arrivals() < JOBS * 3 // 4, "the kill came too late to test anything"
    finally:
        target.gate.set()

    def all_done() -> list[dict] | None:
        listed = api.get(f"{made.base}/proxies/{made.id}/async", params={"limit": 1000}).json()[
            "asyncRequests"
        ]
        done = [job for job in listed if job["status"] in ("succeeded", "failed", "dead")]
        return listed if len(done) == JOBS else None

    jobs = {job["requestId"]: job for job in poll(all_done, ALL_DONE_S, "every job finished")}
    assert set(jobs) == set(accepted.values())
    assert Counter(job["status"] for job in jobs.values()) == {"succeeded": JOBS}

    # What the target saw: every arrival of a job carries that job's key, and only its key.
    arrivals: dict[str, list[list[str]]] = defaultdict(list)
    for received in list(target.received):
        if received.path in accepted:
            keys = [value for name, value in received.headers if name.lower() == KEY]
            arrivals[received.path].append(keys)
    assert set(arrivals) == set(accepted), "every job reached the target"
    for path, seen in arrivals.items():
        assert seen == [[accepted[path]]] * len(seen), (path, seen)
    # A target that honours the key carries each job out once: one distinct key per job.
    carried_out = {keys[0] for seen in arrivals.values() for keys in seen}
    assert carried_out == set(accepted.values())

    # Physical duplicates: only jobs the killed process had in flight (an attempt of theirs
    # ends "interrupted"), and never more of them than it could have in flight.
    duplicated = {accepted[path] for path, seen in arrivals.items() if len(seen) > 1}
    interrupted = {
        request_id
        for request_id, job in jobs.items()
        if any((a.get("error") or "").startswith("interrupted") for a in job["attempts"])
    }
    assert interrupted, "the victim had deliveries in flight when it was killed"
    assert duplicated <= interrupted, duplicated - interrupted
    assert all(len(arrivals[path]) <= 2 for path in accepted), "at most one redelivery each"
    assert len(interrupted) <= CONCURRENCY, "no more than the victim's deliveries in flight"
    for request_id in duplicated:
        assert job_of(api, made, request_id)["deliveryKey"] == request_id
    assert survivor.process.poll() is None


# --- telemetry from two processes, compacted --------------------------------------------


def test_telemetry_of_two_processes_adds_up_at_every_resolution(shared_store, target, shared_pair):
    admin, api = shared_store
    pair = shared_pair
    made = Setup(api, target)
    sent: Counter = Counter()
    path = f"/api/{made.id}/status/200"
    served_by_all(pair, path, sent)
    per_process = 60
    statuses: Counter = Counter()

    def traffic(proxy: ProxyServer) -> None:
        for _ in range(per_process):
            sent[proxy.base_url] += 1  # counted before: a failed call is still a request
            # One key per thread: no increments lost between the two threads.
            statuses[proxy.base_url, call(proxy, "GET", path, headers=AUTH).status_code] += 1

    threads = [threading.Thread(target=traffic, args=(proxy,)) for proxy in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(sent.values())
    assert statuses == {(proxy.base_url, 200): per_process for proxy in pair}, statuses
    assert set(sent) == {proxy.base_url for proxy in pair}

    telemetry = f"{made.base}/proxies/{made.id}/telemetry"

    def counted(interval: str) -> int:
        response = api.get(telemetry, params={"interval": interval})
        assert response.status_code == 200, response.text
        return sum(r["countMap"].get("proxy", 0) for r in response.json()["telemetry"])

    poll(lambda: counted("minute") >= total, TELEMETRY_S, f"{total} requests in telemetry")
    # Compaction is idempotent: twice changes nothing (the second run through the same
    # `main`, in this process).
    for run, command in enumerate((run_admin_cli, run_admin_cli_in_process)):
        result = command(admin, "roll-up-telemetry")
        assert result.returncode == 0, result.stderr
        for interval in ("minute", "hour", "day", "month"):
            assert counted(interval) == total, (run, interval)


# --- configuration changes reach both processes within a second -------------------------


class Traffic:
    """Requests through every process in background threads, until stopped."""

    def __init__(self, proxies: list[ProxyServer], path: str):
        self._stop = threading.Event()
        self.statuses: Counter = Counter()
        self._threads = [
            threading.Thread(target=self._run, args=(proxy, path), daemon=True)
            for proxy in proxies
            for _ in range(2)
        ]

    def _run(self, proxy: ProxyServer, path: str) -> None:
        while not self._stop.is_set():
            self.statuses[call(proxy, "GET", path, headers=AUTH).status_code] += 1

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def live_in_all(proxies: list[ProxyServer], path: str, status: int, answered_at: float):
    """Every process answers `status` on `path` within LIVE_WITHIN_S of the admin's answer."""
    pending = list(proxies)
    while True:
        pending = [p for p in pending if call(p, "GET", path, headers=AUTH).status_code != status]
        if not pending:
            return
        if time.monotonic() - answered_at > LIVE_WITHIN_S:
            names = [p.base_url for p in pending]
            raise AssertionError(f"not live in {names} {LIVE_WITHIN_S} s after the admin answered")
        time.sleep(0.02)  # polling real processes, bounded by the one-second deadline


def test_a_config_change_is_live_in_both_processes_within_a_second(
    shared_store, target, shared_pair
):
    api, pair = shared_store[1], shared_pair
    made = Setup(api, target)
    blocked = f"/api/{made.id}/blocked/status/200"
    allowed = f"/api/{made.id}/status/200"
    served_by_all(pair, blocked)
    served_by_all(pair, allowed)
    proxy_url = f"{made.base}/proxies/{made.id}"
    with Traffic(pair, allowed) as load:
        rule = api.post(f"{proxy_url}/rules", json={"effect": "deny", "pathPattern": "^/blocked"})
        live_in_all(pair, blocked, 403, time.monotonic())
        assert rule.status_code == 201, rule.text

        off = api.put(proxy_url, json={"proxyActive": False})
        live_in_all(pair, allowed, 403, time.monotonic())
        assert off.status_code == 200, off.text

        on = api.put(proxy_url, json={"proxyActive": True})
        live_in_all(pair, allowed, 200, time.monotonic())
        assert on.status_code == 200, on.text
    assert load.statuses[200] > 0 and set(load.statuses) <= {200, 403}, load.statuses
