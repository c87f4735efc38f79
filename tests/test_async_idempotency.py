"""Async delivery is at least once; every attempt of a job carries one stable Idempotency-Key.

The key is the caller's `Idempotency-Key`, or the job's `requestId` when the
caller sent none. It is read here where a target would read it, at the recording
upstream: on retries, on a replay, and on the redelivery that follows a SIGKILL
or a stalled process losing its lease. Leases are renewed while an attempt runs,
so a slow target is not sent the same job twice while the process delivering
it is alive.
"""

from __future__ import annotations

import http.client
import json
import signal
import time
import uuid
from urllib.parse import urlsplit

import pytest

from tests.async_support import (
    AUTH,
    JOB_TIMEOUT_S,
    deliveries,
    finished,
    job_of,
    key,
    schedule,
    submit,
    user_api,
    wait_for_job,
)
from tests.proxy_support import (
    CALLER_KEY,
    ProxyServer,
    Setup,
    start_proxies,
    start_proxy,
    wait_until_served,
)
from tests.support import AdminServer, Api, start_admin

SHORT_LEASE_MS = 2000
# Answers after more than three leases: without renewal, the job would be claimed again.
SLOW_MS = 6500


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[AdminServer, Api]:
    server = start_admin(tmp_path_factory.mktemp("idempotency-admin"))
    yield server, user_api(server)
    server.stop()


@pytest.fixture(scope="module")
def gateway(store, tmp_path_factory) -> ProxyServer:
    proxy = start_proxy(store[0], tmp_path_factory.mktemp("idempotency"), *schedule())
    yield proxy
    proxy.stop()


@pytest.fixture
def made(store, upstream, gateway) -> Setup:
    setup = Setup(store[1], upstream)
    wait_until_served(gateway, f"/api/{setup.id}/status/200", AUTH)
    return setup


def keys_seen(upstream, path: str) -> list[list[str]]:
    """The Idempotency-Key header values of each delivery of `path` the target received."""
    return [
        [value for name, value in received.headers if name.lower() == "idempotency-key"]
        for received in deliveries(upstream, path)
    ]


def expected_key(caller_key: str | None, request_id: str) -> str:
    return caller_key or request_id


def caller_headers(caller_key: str | None) -> dict:
    return {"Idempotency-Key": caller_key} if caller_key else {}


@pytest.mark.parametrize("caller_key", [None, "order 7f3a/2024:"], ids=["generated", "caller"])
def test_every_retry_and_replay_of_a_job_carries_the_same_key(
    store, upstream, made, gateway, caller_key
):
    api = store[1]
    caller_key = caller_key and f"{caller_key}{uuid.uuid4()}"
    retried = f"/flaky/{key()}/2"
    replayed = f"/flaky/{key()}/1"
    first_key = caller_key and caller_key + "-a"
    second_key = caller_key and caller_key + "-b"
    retried_id = submit(
        gateway, made, retried + "?status=503", headers=caller_headers(first_key), data=b"x"
    ).json()["requestId"]
    replayed_id = submit(
        gateway, made, replayed + "?status=404", headers=caller_headers(second_key), data=b"x"
    ).json()["requestId"]

    job = wait_for_job(api, made, retried_id, finished)
    assert [a["status"] for a in job["attempts"]] == [503, 503, 200]
    failed = wait_for_job(api, made, replayed_id, finished)
    assert failed["status"] == "failed"
    replay = api.post(f"{made.base}/proxies/{made.id}/async/{replayed_id}/replay")
    assert replay.status_code == 200, replay.text
    again = wait_for_job(api, made, replayed_id, lambda j: j["status"] == "succeeded")
    assert [a["status"] for a in again["attempts"]] == [404, 200]

    cases = [(retried, retried_id, first_key), (replayed, replayed_id, second_key)]
    for path, request_id, sent in cases:
        want = expected_key(sent, request_id)
        seen = keys_seen(upstream, f"/base{path}")
        assert seen == [[want]] * len(job_of(api, made, request_id)["attempts"]), (
            "exactly one Idempotency-Key header, the same on every attempt"
        )
        assert job_of(api, made, request_id)["deliveryKey"] == want


def test_keys_differ_between_jobs(store, upstream, made, gateway):
    paths = [f"/flaky/{key()}/0" for _ in range(3)]
    ids = [submit(gateway, made, path, data=b"x").json()["requestId"] for path in paths]
    for request_id in ids:
        wait_for_job(store[1], made, request_id, finished)
    seen = [keys_seen(upstream, f"/base{path}") for path in paths]
    assert seen == [[[request_id]] for request_id in ids]


def raw_post(gateway: ProxyServer, path: str, headers: list[tuple[bytes, bytes]]):
    """POST with headers exactly as given (repeats, any bytes): (status, JSON body or None)."""
    address = urlsplit(gateway.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=15)
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in [(b"X-API-Key", CALLER_KEY.encode()), *headers]:
            connection.putheader(name, value)
        connection.putheader("Content-Length", "1")
        connection.endheaders(b"x")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, None


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Idempotency-Key", b"one"), (b"Idempotency-Key", b"two")],
        [(b"Idempotency-Key", b"same"), (b"idempotency-key", b"same")],
        [(b"Idempotency-Key", b"")],
        [(b"Idempotency-Key", b"k" * 256)],
        [(b"Idempotency-Key", b"tab\there")],
        [(b"Idempotency-Key", "caf\u00e9".encode())],
        [(b"Idempotency-Key", b"raw-\xff")],
    ],
    ids=["two-values", "repeated", "empty", "too-long", "control", "non-ascii", "bad-utf8"],
)
def test_a_key_that_could_not_be_sent_unchanged_is_refused(store, made, gateway, headers):
    status, body = raw_post(gateway, f"/async/{made.id}/events", headers)
    assert status == 400
    if body is not None:  # mitmproxy itself may refuse the raw bytes first
        assert body["error"]["code"] == "INVALID_INPUT"
        assert "Idempotency-Key" in body["error"]["details"]["fields"]
    listed = store[1].get(f"{made.base}/proxies/{made.id}/async").json()["asyncRequests"]
    assert listed == [], "nothing was queued"


def test_the_longest_key_is_accepted_and_sent_unchanged(store, upstream, made, gateway):
    longest = "k" * 200 + uuid.uuid4().hex[:55]
    path = f"/flaky/{key()}/0"
    response = submit(gateway, made, path, headers={"Idempotency-Key": longest}, data=b"x")
    assert response.status_code == 202, response.text
    wait_for_job(store[1], made, response.json()["requestId"], finished)
    assert keys_seen(upstream, f"/base{path}") == [[longest]]


def wait_received(upstream, paths: list[str]) -> None:
    """Until the target has received (head and body) a delivery of every path."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not all(deliveries(upstream, f"/base{path}") for path in paths):
        if time.monotonic() > deadline:
            raise AssertionError("the deliveries did not arrive")
        time.sleep(0.05)  # polling the recording upstream, bounded


def wait_logged(proxy: ProxyServer, text: str) -> str:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while text not in (log := proxy.log_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the proxy's log:\n{log}")
        time.sleep(0.05)  # polling the process's log, bounded
    return log


def test_jobs_redelivered_after_a_sigkill_carry_the_first_deliverys_key(lone, upstream, tmp_path):
    admin_server, api = lone
    options = schedule(
        portcullis_async_lease_ms=SHORT_LEASE_MS, portcullis_async_attempt_timeout_ms=20000
    )
    made = Setup(api, upstream)
    paths = [f"/flaky/{key()}/0" for _ in range(6)]
    callers = [None if n % 2 else f"caller-{uuid.uuid4()}" for n in range(len(paths))]
    first = start_proxy(admin_server, tmp_path / "first", *options)
    try:
        wait_until_served(first, f"/api/{made.id}/status/200", AUTH)
        ids = [
            submit(
                first, made, f"{path}?delay_ms=3000", headers=caller_headers(caller), data=b"x"
            ).json()["requestId"]
            for path, caller in zip(paths, callers, strict=True)
        ]
        wait_received(upstream, paths)  # every job is in flight, none answered yet
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    second = start_proxy(admin_server, tmp_path / "second", *options)
    try:
        jobs = [wait_for_job(api, made, request_id, finished) for request_id in ids]
    finally:
        second.stop()
    for path, caller, request_id, job in zip(paths, callers, ids, jobs, strict=True):
        assert job["status"] == "succeeded"
        assert job["attempts"][0]["error"].startswith("interrupted")
        seen = keys_seen(upstream, f"/base{path}")
        assert len(seen) >= 2, "the request cut off by the crash reached the target, and again"
        assert seen == [[expected_key(caller, request_id)]] * len(seen), "duplicates share a key"


def test_an_attempt_longer_than_the_lease_is_not_delivered_twice(lone, upstream, tmp_path):
    """Two processes dispatch one store; each attempt outlasts three leases."""
    admin_server, api = lone
    options = schedule(
        portcullis_async_lease_ms=SHORT_LEASE_MS, portcullis_async_attempt_timeout_ms=20000
    )
    made = Setup(api, upstream)
    gateways = start_proxies(admin_server, [tmp_path / name for name in ("a", "b")], *options)
    try:
        for proxy in gateways:
            wait_until_served(proxy, f"/api/{made.id}/status/200", AUTH)
        paths = [f"/flaky/{key()}/0" for _ in range(4)]
        ids = [
            submit(proxy, made, f"{path}?delay_ms={SLOW_MS}", data=b"x").json()["requestId"]
            for path, proxy in zip(paths, gateways * 2, strict=True)
        ]
        jobs = [wait_for_job(api, made, request_id, finished) for request_id in ids]
    finally:
        for proxy in gateways:
            proxy.stop()
    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    assert [len(job["attempts"]) for job in jobs] == [1] * 4
    assert [len(deliveries(upstream, f"/base{path}")) for path in paths] == [1] * 4


def test_a_stalled_process_loses_its_lease_and_its_late_outcome_is_refused(
    lone, upstream, tmp_path
):
    """A process frozen mid-attempt (SIGSTOP) stops renewing; another delivers the job
    again with the same key; when the first wakes, the store refuses its outcome."""
    admin_server, api = lone
    options = schedule(
        portcullis_async_lease_ms=SHORT_LEASE_MS, portcullis_async_attempt_timeout_ms=20000
    )
    made = Setup(api, upstream)
    path = f"/flaky/{key()}/0"
    stalled = start_proxy(admin_server, tmp_path / "stalled", *options)
    other = None
    try:
        wait_until_served(stalled, f"/api/{made.id}/status/200", AUTH)
        request_id = submit(stalled, made, f"{path}?delay_ms=3000", data=b"x").json()["requestId"]
        wait_received(upstream, [path])
        stalled.process.send_signal(signal.SIGSTOP)
        other = start_proxy(admin_server, tmp_path / "other", *options)
        job = wait_for_job(api, made, request_id, lambda j: j["status"] == "succeeded")
        stalled.process.send_signal(signal.SIGCONT)
        wait_logged(stalled, f"lost the lease on job {request_id} during attempt 1")
        after = job_of(api, made, request_id)
    finally:
        stalled.process.send_signal(signal.SIGCONT)
        stalled.stop()
        if other is not None:
            other.stop()
    assert [a["status"] for a in job["attempts"]] == [None, 200]
    assert job["attempts"][0]["error"].startswith("interrupted")
    assert after["attempts"] == job["attempts"] and after["status"] == "succeeded"
    assert keys_seen(upstream, f"/base{path}") == [[request_id], [request_id]]


def test_a_lease_too_short_to_renew_is_refused_at_start(admin_server, tmp_path):
    with pytest.raises(RuntimeError, match="portcullis_async_lease_ms must be at least 1000"):
        start_proxy(admin_server, tmp_path / "short", "--set", "portcullis_async_lease_ms=999")
