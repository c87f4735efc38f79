"""Delivery in its own process: `--no-dispatcher` accepts, `--dispatcher-only` delivers.

A gateway started with `--no-dispatcher` answers 202 and leaves every job
queued; the jobs survive that process. A `--dispatcher-only` process serves
no proxy traffic (only its health answer) and delivers what any gateway
accepted, before and while it runs. Real processes, a real store, a real upstream.
"""

from __future__ import annotations

import pytest
import requests

from tests.async_support import (
    AUTH,
    finished,
    job_of,
    key,
    schedule,
    submit,
    user_api,
    wait_for_job,
)
from tests.proxy_support import (
    TARGET_TOKEN,
    Setup,
    call,
    logged,
    start_proxy,
    wait_until_served,
)
from tests.support import AdminServer, Api, start_admin


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory) -> AdminServer:
    # A store of its own: no other process may deliver these jobs.
    server = start_admin(tmp_path_factory.mktemp("dispatcher-admin"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(admin_server) -> Api:
    return user_api(admin_server)


def accept_jobs(gateway, made: Setup, count: int) -> dict[str, str]:
    """`count` jobs accepted by `gateway`: request id -> the path each is delivered to."""
    accepted = {}
    for _ in range(count):
        path = f"/status/200?job={key()}"
        response = submit(gateway, made, path, json={"n": path})
        assert response.status_code == 202, response.text
        accepted[response.json()["requestId"]] = path
    return accepted


def test_jobs_accepted_without_a_dispatcher_wait_for_a_dispatcher_only_process(
    admin_server, api, upstream, tmp_path
):
    gateway = start_proxy(admin_server, tmp_path / "accept", "--no-dispatcher", *schedule())
    try:
        made = Setup(api, upstream)
        served = wait_until_served(gateway, f"/api/{made.id}/status/200", AUTH)
        assert served.status_code == 200  # it still serves the Proxy API
        before = accept_jobs(gateway, made, 3)
        # A synchronous request after them, once logged: a dispatcher in this process
        # (woken by each accept, polling every 50 ms) would have had ample time.
        logged(api, made, served.headers["portcullis-request-id"])
        later = call(gateway, "GET", f"/api/{made.id}/status/200", headers=AUTH)
        logged(api, made, later.headers["portcullis-request-id"])
    finally:
        gateway.stop()
    # The accepting process is gone; its jobs are in the store, never attempted.
    for request_id in before:
        job = job_of(api, made, request_id)
        assert job["status"] == "queued" and job["attempts"] == [], job
    queries = {path.partition("?")[2] for path in before.values()}
    assert not [r for r in upstream.received if r.query in queries]

    dispatcher = start_proxy(admin_server, tmp_path / "deliver", "--dispatcher-only", *schedule())
    gateway = start_proxy(admin_server, tmp_path / "accept2", "--no-dispatcher", *schedule())
    try:
        # Accepted while the dispatcher runs, by another process that delivers nothing.
        during = accept_jobs(gateway, made, 3)
        for request_id, path in {**before, **during}.items():
            job = wait_for_job(api, made, request_id, finished)
            assert job["status"] == "succeeded" and job["response"]["status"] == 200, job
            [received] = [r for r in upstream.received if r.query == path.partition("?")[2]]
            assert ("Authorization", f"Bearer {TARGET_TOKEN}") in received.headers
        assert "delivery is off here" in gateway.log_text()
    finally:
        gateway.stop()
        dispatcher.stop()


def test_a_dispatcher_only_process_serves_health_and_no_proxy_traffic(
    admin_server, api, upstream, tmp_path
):
    dispatcher = start_proxy(admin_server, tmp_path / "only", "--dispatcher-only", *schedule())
    try:
        made = Setup(api, upstream)
        seen = len(upstream.received)
        health = call(dispatcher, "GET", "/_portcullis/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok" and body["role"] == "dispatcher"
        assert body["configVersion"] is not None and body["store"]["reachable"] is True
        assert call(dispatcher, "HEAD", "/_portcullis/health").status_code == 200
        assert call(dispatcher, "POST", "/_portcullis/health").status_code == 405
        # Proxy API and Async API paths: a JSON 404, nothing forwarded, nothing queued.
        for method, path in (("GET", f"/api/{made.id}/status/200"),
                             ("POST", f"/async/{made.id}/status/200")):  # fmt: skip
            refused = call(dispatcher, method, path, headers=AUTH, json={"x": 1})
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "NOT_FOUND"
        assert len(upstream.received) == seen
        assert api.get(f"{made.base}/proxies/{made.id}/async").json()["asyncRequests"] == []
        with pytest.raises(requests.RequestException):
            # Not a proxy either: a forward-proxy request gets no proxying.
            requests.get(upstream.base_url + "/status/200", proxies={"http": dispatcher.base_url},
                         timeout=5).raise_for_status()  # fmt: skip
    finally:
        dispatcher.stop()
