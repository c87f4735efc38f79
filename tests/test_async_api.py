"""The Async API end to end: queued before 202, delivered with retries, observed, replayed, durable.

A data plane with a fast schedule (backoffs of at most 200 ms, a 30 s
window) stands in for the 15-minute one; the schedule's shape is the same.
"""

from __future__ import annotations

import itertools
import signal
import time
import uuid

import pytest

from tests import oauth_support
from tests.async_support import (
    AUTH,
    JOB_TIMEOUT_S,
    deliveries,
    epoch,
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
    TARGET_TOKEN,
    Setup,
    call,
    free_port,
    logged,
    start_proxy,
    wait_until_served,
)
from tests.support import (
    AdminServer,
    Api,
    assert_error,
    assert_invalid,
    new_client,
    run_admin_cli,
    run_admin_cli_in_process,
    start_admin,
)
from tests.token_support import REDIRECT_URI, oauth2_secret, serve, token_setup

TRANSIENT = [408, 429, 500, 502, 503, 504, 507, 509, 520, 526, 530, 598, 599]


# Every proxy process on a store dispatches its jobs, with its own schedule. So these tests
# use a store of their own, and the tests that must be the only dispatcher one each.
@pytest.fixture(scope="module")
def admin_server(tmp_path_factory) -> AdminServer:
    server = start_admin(tmp_path_factory.mktemp("async-admin"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(admin_server) -> Api:
    return user_api(admin_server)


@pytest.fixture(scope="module")
def async_gateway(admin_server, tmp_path_factory):
    proxy = start_proxy(admin_server, tmp_path_factory.mktemp("async"), *schedule())
    yield proxy
    proxy.stop()


@pytest.fixture
def made(api, upstream, async_gateway) -> Setup:
    setup = Setup(api, upstream)
    wait_until_served(async_gateway, f"/api/{setup.id}/status/200", AUTH)
    return setup


def test_the_job_is_stored_before_the_202_and_then_delivered(api, upstream, made, async_gateway):
    response = submit(async_gateway, made, "/webhooks?source=app", json={"event": "user.created"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["message"]
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-granted"
    request_id = body["requestId"]
    assert response.headers["portcullis-request-id"] == request_id
    # No waiting: the row was committed before the answer was sent.
    stored = job_of(api, made, request_id)
    assert stored["method"] == "POST" and stored["path"] == "/webhooks"
    assert stored["query"] == "source=app" and "x-api-key" not in stored["headers"]

    job = wait_for_job(api, made, request_id, finished)
    assert job["status"] == "succeeded" and job["response"]["status"] == 200
    assert [a["status"] for a in job["attempts"]] == [200]
    [received] = deliveries(upstream, "/base/webhooks")[-1:]
    assert ("Authorization", f"Bearer {TARGET_TOKEN}") in received.headers
    assert received.body == b'{"event": "user.created"}' and received.query == "source=app"
    assert CALLER_KEY not in str(received)


def test_the_target_credential_is_never_stored_with_the_job(admin_server, api, made, async_gateway):
    response = submit(async_gateway, made, "/status/200", json={"n": 1})
    wait_for_job(api, made, response.json()["requestId"], finished)
    assert TARGET_TOKEN.encode() not in admin_server.store_bytes()


@pytest.mark.parametrize("status", TRANSIENT)
def test_each_transient_status_is_retried(api, upstream, made, async_gateway, status):
    path = f"/flaky/{key()}/2?status={status}"
    request_id = submit(async_gateway, made, path, data=b"x").json()["requestId"]
    job = wait_for_job(api, made, request_id, finished)
    assert job["status"] == "succeeded"
    assert [a["status"] for a in job["attempts"]] == [status, status, 200]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, "failed"), (404, "failed"), (501, "failed"), (201, "succeeded"), (302, "succeeded")],
)
def test_any_other_status_completes_the_job(api, made, async_gateway, status, outcome):
    request_id = submit(async_gateway, made, f"/status/{status}", data=b"x").json()["requestId"]
    job = wait_for_job(api, made, request_id, finished)
    assert job["status"] == outcome and [a["status"] for a in job["attempts"]] == [status]
    assert job["response"]["status"] == status


def test_a_timeout_is_retried(api, made, async_gateway):
    # The first answer comes after 2 s, past the 0.5 s attempt timeout; the second in time.
    path = f"/flaky/{key()}/1?status=200&delay_ms=2000"
    request_id = submit(async_gateway, made, path, data=b"x").json()["requestId"]
    job = wait_for_job(api, made, request_id, lambda j: len(j["attempts"]) >= 2)
    assert "did not answer within 0.5s" in job["attempts"][0]["error"]
    assert job["attempts"][0]["status"] is None


def test_a_dead_target_is_retried_ten_times_then_dead_lettered_with_a_notification(
    api, upstream, async_gateway
):
    from types import SimpleNamespace

    dead = Setup(api, SimpleNamespace(base_url=f"http://127.0.0.1:{free_port()}"))
    wait_until_served(async_gateway, f"/api/{dead.id}/", AUTH, lambda r: r.status_code == 502)
    request_id = submit(async_gateway, dead, "/events", data=b"x").json()["requestId"]
    job = wait_for_job(api, dead, request_id, finished)
    assert job["status"] == "dead"
    assert len(job["attempts"]) == 11, "the first attempt and 10 retries"
    assert all("could not connect" in a["error"] for a in job["attempts"])
    notices = api.get(f"{dead.base}/notifications").json()["notifications"]
    [notice] = [n for n in notices if n["details"]["requestId"] == request_id]
    assert notice["read"] is False and "could not be delivered" in notice["title"]
    assert notice["event"] == "async.dead_letter" and notice["type"] == "client"
    opened = api.get(f"{dead.base}/notifications/{notice['notificationId']}").json()
    assert opened["notifications"][0]["read"] is True


def test_retry_after_is_honoured(api, made, async_gateway):
    path = f"/flaky/{key()}/1?status=429&header=Retry-After:2"
    request_id = submit(async_gateway, made, path, data=b"x").json()["requestId"]
    job = wait_for_job(api, made, request_id, finished)
    first, second = job["attempts"]
    gap = epoch(second["startedAt"]) - epoch(first["finishedAt"])
    assert first["status"] == 429 and second["status"] == 200
    assert gap >= 2 - 0.001, "the second attempt waited as long as the target asked"


def test_a_retry_after_beyond_the_window_ends_the_job(api, made, async_gateway):
    path = f"/flaky/{key()}/1?status=503&header=Retry-After:3600"
    request_id = submit(async_gateway, made, path, data=b"x").json()["requestId"]
    job = wait_for_job(api, made, request_id, finished)
    assert job["status"] == "dead" and len(job["attempts"]) == 1


def test_retries_stop_at_the_end_of_the_window(lone, upstream, tmp_path):
    admin_server, api = lone
    short = start_proxy(
        admin_server,
        tmp_path,
        *schedule(
            portcullis_async_window_s=1,
            portcullis_async_backoff_base_ms=400,
            portcullis_async_backoff_cap_ms=400,
        ),
    )
    try:
        made = Setup(api, upstream)
        wait_until_served(short, f"/api/{made.id}/status/200", AUTH)
        request_id = submit(short, made, f"/flaky/{key()}/100", data=b"x").json()["requestId"]
        job = wait_for_job(api, made, request_id, finished)
    finally:
        short.stop()
    assert job["status"] == "dead" and 1 < len(job["attempts"]) < 11
    deadline = epoch(job["deadlineAt"])
    assert all(epoch(a["scheduledAt"]) <= deadline for a in job["attempts"])
    assert all(epoch(a["startedAt"]) >= epoch(a["scheduledAt"]) for a in job["attempts"])


def test_an_idempotency_key_returns_the_first_jobs_answer(api, upstream, made, async_gateway):
    path, headers = f"/flaky/{key()}/0", {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = submit(async_gateway, made, path, headers=headers, data=b"a")
    again = submit(async_gateway, made, path, headers=headers, data=b"a")
    other = submit(async_gateway, made, path, headers={"Idempotency-Key": "another"}, data=b"b")
    assert first.status_code == again.status_code == 202
    assert again.json()["requestId"] == first.json()["requestId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["requestId"] != first.json()["requestId"]
    for response in (first, other):
        wait_for_job(api, made, response.json()["requestId"], finished)
    assert len(deliveries(upstream, f"/base{path}")) == 2


def test_a_failed_job_can_be_replayed(api, made, async_gateway):
    path = f"/flaky/{key()}/1?status=404"
    request_id = submit(async_gateway, made, path, data=b"x").json()["requestId"]
    assert wait_for_job(api, made, request_id, finished)["status"] == "failed"
    replay = f"{made.base}/proxies/{made.id}/async/{request_id}/replay"
    replayed = api.post(replay)
    assert replayed.status_code == 200 and replayed.json()["asyncRequests"][0]["status"] == "queued"
    job = wait_for_job(api, made, request_id, lambda j: j["status"] == "succeeded")
    assert [a["status"] for a in job["attempts"]] == [404, 200]
    assert_error(api.post(replay), 409, "CONFLICT")


def test_a_job_the_changed_configuration_cannot_send_fails_at_once(
    api, upstream, made, async_gateway
):
    """Additional data added after acceptance cannot merge into a too-deep body: no retries."""
    path = f"/flaky/{key()}/1?status=404"
    deep = b'{"a":' * 70 + b"1" + b"}" * 70
    request_id = submit(async_gateway, made, path, data=deep).json()["requestId"]
    assert wait_for_job(api, made, request_id, finished)["status"] == "failed"
    changed = api.put(
        f"{made.base}/proxies/{made.id}", json={"proxyAdditionalData": {"source": "gateway"}}
    )
    assert changed.status_code == 200, changed.text
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while submit(async_gateway, made, "/probe", data=deep).status_code != 400:
        assert time.monotonic() < deadline, "the data plane never took the new configuration"
        time.sleep(0.05)  # polling a real process for a real change, bounded

    assert api.post(f"{made.base}/proxies/{made.id}/async/{request_id}/replay").status_code == 200
    job = wait_for_job(api, made, request_id, lambda j: finished(j) and len(j["attempts"]) == 2)
    assert job["status"] == "failed"
    assert job["attempts"][-1]["status"] is None
    assert "JSON" in job["attempts"][-1]["error"]
    assert len(deliveries(upstream, f"/base{path.split('?')[0]}")) == 1, "never sent again"


def test_attempts_are_in_the_request_log_and_telemetry_marked_async(api, made, async_gateway):
    response = submit(async_gateway, made, f"/flaky/{key()}/1", data=b"x")
    job = wait_for_job(api, made, response.json()["requestId"], finished)
    accepted = logged(api, made, job["requestId"])
    assert accepted["proxyData"]["async"] is True and accepted["proxyData"]["status"] == 202
    for attempt in job["attempts"]:
        entry = logged(api, made, attempt["requestId"])
        assert entry["proxyData"]["async"] is True
        assert entry["proxyData"]["asyncRequestId"] == job["requestId"]
        assert entry["proxyData"]["attempt"] == attempt["number"]
        assert entry["targetData"]["status"] == attempt["status"]
        assert entry["responseHeaders"]["content-type"], "the target's headers are logged"
    path = f"{made.base}/proxies/{made.id}/telemetry"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        records = api.get(path, params={"interval": "minute"}).json()["telemetry"]
        marked = {
            leg: sum(r["asyncCountMap"].get(leg, 0) for r in records) for leg in ("proxy", "target")
        }
        if marked == {"proxy": 1, "target": 2} or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling the store for the writer's batch, bounded
    assert marked == {"proxy": 1, "target": 2}


def test_refusals_are_answered_and_nothing_is_queued(api, made, async_gateway):
    refused = call(
        async_gateway, "POST", f"/async/{made.id}/x", headers={"X-API-Key": "no"}, data=b"x"
    )
    assert refused.status_code == 401
    assert api.get(f"{made.base}/proxies/{made.id}/async").json()["asyncRequests"] == []


def test_the_api_lists_filters_and_refuses_bad_input(api, made, async_gateway):
    ok = submit(async_gateway, made, f"/flaky/{key()}/0", data=b"x").json()["requestId"]
    bad = submit(async_gateway, made, "/status/400", data=b"x").json()["requestId"]
    for request_id in (ok, bad):
        wait_for_job(api, made, request_id, finished)
    base = f"{made.base}/proxies/{made.id}/async"
    failed = api.get(base, params={"status": "failed"}).json()["asyncRequests"]
    assert [j["requestId"] for j in failed] == [bad]
    assert_invalid(api.get(base, params={"status": "lost"}), "status")
    assert_error(api.get(f"{base}/{uuid.uuid4()}"), 404, "NOT_FOUND")
    other = new_client(api)
    assert_error(api.get(f"/api/clients/{other}/proxies/{made.id}/async/{ok}"), 404, "NOT_FOUND")


def test_finished_requests_are_purged_after_their_retention(admin_server, api, made, async_gateway):
    request_id = submit(async_gateway, made, "/status/200", data=b"x").json()["requestId"]
    wait_for_job(api, made, request_id, finished)
    kept = run_admin_cli_in_process(admin_server, "purge")  # the same `main`, in this process
    assert kept.returncode == 0 and job_of(api, made, request_id)["status"] == "succeeded"
    result = run_admin_cli(admin_server, "purge", PORTCULLIS_ASYNC_JOB_DAYS="0")
    assert result.returncode == 0, result.stderr
    assert "async requests" in result.stdout
    path = f"{made.base}/proxies/{made.id}/async/{request_id}"
    assert_error(api.get(path), 404, "NOT_FOUND")


def test_a_sigkill_mid_backoff_loses_nothing_and_delivers_once(lone, upstream, tmp_path):
    admin_server, api = lone
    slow_retry = schedule(
        portcullis_async_backoff_base_ms=2000, portcullis_async_backoff_cap_ms=2000
    )
    first = start_proxy(admin_server, tmp_path / "first", *slow_retry)
    made = Setup(api, upstream)
    # Full jitter may pick a backoff near 0; the target's Retry-After keeps the job waiting
    # long enough to be seen queued and killed mid-backoff.
    path = f"/flaky/{key()}/1?header=Retry-After:4"
    try:
        wait_until_served(first, f"/api/{made.id}/status/200", AUTH)
        request_id = submit(first, made, path, data=b"once").json()["requestId"]
        waiting = wait_for_job(
            api, made, request_id, lambda j: len(j["attempts"]) == 1 and j["status"] == "queued"
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    assert waiting["nextAttemptAt"] is not None
    second = start_proxy(admin_server, tmp_path / "second", *slow_retry)
    try:
        job = wait_for_job(api, made, request_id, finished)
    finally:
        second.stop()
    assert job["status"] == "succeeded"
    bodies = [r.body for r in deliveries(upstream, f"/base{path.split('?')[0]}")]
    assert bodies == [b"once", b"once"], "one failed attempt, then exactly one successful delivery"


def test_a_sigkill_mid_request_loses_nothing(lone, upstream, tmp_path):
    admin_server, api = lone
    patient = schedule(portcullis_async_attempt_timeout_ms=10000)
    first = start_proxy(admin_server, tmp_path / "first", *patient)
    made = Setup(api, upstream)
    path = f"/flaky/{key()}/0?delay_ms=1500"
    try:
        wait_until_served(first, f"/api/{made.id}/status/200", AUTH)
        request_id = submit(first, made, path, data=b"x").json()["requestId"]
        assert upstream.wait_started(f"/base{path.split('?')[0]}")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    second = start_proxy(admin_server, tmp_path / "second", *patient)
    try:
        job = wait_for_job(api, made, request_id, finished)
    finally:
        second.stop()
    assert job["status"] == "succeeded"
    assert job["attempts"][0]["error"].startswith("interrupted")
    assert job["attempts"][-1]["status"] == 200


def test_two_dispatchers_deliver_every_job_exactly_once(
    admin_server, api, upstream, async_gateway, tmp_path
):
    other = start_proxy(admin_server, tmp_path, *schedule())
    try:
        made = Setup(api, upstream)
        for gateway in (async_gateway, other):
            wait_until_served(gateway, f"/api/{made.id}/status/200", AUTH)
        paths = [f"/flaky/{key()}/0" for _ in range(30)]
        ids = [
            submit(gateway, made, path, data=b"x").json()["requestId"]
            for path, gateway in zip(paths, itertools.cycle((async_gateway, other)), strict=False)
        ]
        for request_id in ids:
            assert wait_for_job(api, made, request_id, finished)["status"] == "succeeded"
    finally:
        other.stop()
    assert [len(deliveries(upstream, f"/base{path}")) for path in paths] == [1] * len(paths)


# ---- target credentials that mint their tokens (issue 14) ----

oauth_server_process, oauth_server = oauth_support.oauth_server_process, oauth_support.oauth_server


def test_a_job_is_delivered_with_a_minted_token_and_a_refused_one_renewed(
    api, async_gateway, oauth_server
):
    service = oauth_server.register_client("async-svc", grant_types=["client_credentials"])
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, service))
    serve(async_gateway, made)
    oauth_server.revoke_access_tokens("async-svc")  # the cached token: refused, renewed once
    accepted = call(async_gateway, "PUT", f"/async/{made.id}/jobs", headers=AUTH, json={"n": 1})
    request_id = accepted.json()["requestId"]
    job = wait_for_job(api, made, request_id, finished)
    assert job["status"] == "succeeded" and job["response"]["status"] == 200
    assert oauth_server.stats()["resource"]["valid"] == 2  # serve(), then the job


def test_a_job_whose_credential_is_refused_fails_without_retries(api, async_gateway, oauth_server):
    service = oauth_server.register_client("async-refused", grant_types=["client_credentials"])
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, service))
    oauth_server.revoke_client_secret("async-refused")
    wait_until_served(async_gateway, f"/api/{made.id}/x", AUTH)
    request_id = submit(async_gateway, made, "/jobs", json={"n": 1}).json()["requestId"]
    job = wait_for_job(api, made, request_id, finished)
    assert job["status"] == "failed" and len(job["attempts"]) == 1
    assert made.target_cred["sKey"] in job["attempts"][0]["error"]
    assert oauth_server.stats()["resource"] == {"valid": 0, "rejected": 0}


def test_a_credential_pending_authorization_is_refused_before_queueing(
    api, async_gateway, oauth_server
):
    app = oauth_server.register_client(
        "async-pending", grant_types=["authorization_code"], redirect_uris=[REDIRECT_URI]
    )
    secret = oauth2_secret(
        oauth_server,
        app,
        grantType="authorization_code",
        authorizeUrl=oauth_server.url("/authorize"),
    )
    made = token_setup(api, oauth_server, "oauth2", secret)
    wait_until_served(async_gateway, f"/api/{made.id}/x", AUTH)
    response = submit(async_gateway, made, "/jobs", json={"n": 1})
    assert_error(response, 403, "CREDENTIAL_PENDING_AUTHORIZATION")
