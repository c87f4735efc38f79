"""Async API test support: a fast retry schedule, submitting jobs, and waiting for them.

Every proxy process on a store dispatches its jobs, with its own schedule, so the
async tests use stores of their own (see the fixtures in the test modules, and
`lone` in conftest.py).
"""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import datetime

from tests.proxy_support import CALLER_KEY, Setup, call
from tests.support import AdminServer, Api, create_user

AUTH = {"X-API-Key": CALLER_KEY}
JOB_TIMEOUT_S = 30
# Backoffs of at most 200 ms and a 30 s window stand in for the 15-minute schedule.
FAST = {
    "portcullis_async_backoff_base_ms": 50,
    "portcullis_async_backoff_cap_ms": 200,
    "portcullis_async_window_s": 30,
    "portcullis_async_poll_ms": 50,
    "portcullis_async_attempt_timeout_ms": 500,
    "portcullis_async_lease_ms": 3000,
}
_keys = itertools.count()


def schedule(**overrides) -> list[str]:
    """`--set` arguments for the fast schedule; each option once (mitmproxy stalls on repeats)."""
    return [
        arg for name, value in {**FAST, **overrides}.items() for arg in ("--set", f"{name}={value}")
    ]


def user_api(server: AdminServer) -> Api:
    return Api(server.base_url, create_user(server, "async@example.test").token)


def key() -> str:
    """A fresh key for the upstream's `/flaky/{key}/{n}` counter."""
    return f"k{next(_keys)}-{uuid.uuid4().hex[:6]}"


def submit(gateway, made: Setup, path: str, **kwargs):
    return call(
        gateway,
        "POST",
        f"/async/{made.id}{path}",
        headers={**AUTH, **kwargs.pop("headers", {})},
        **kwargs,
    )


def job_of(api, made: Setup, request_id: str) -> dict:
    response = api.get(f"{made.base}/proxies/{made.id}/async/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()["asyncRequests"][0]


def wait_for_job(api, made: Setup, request_id: str, done, timeout: float = JOB_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = job_of(api, made, request_id)
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not get there: {job}")
        time.sleep(0.05)  # polling the store for the dispatcher's progress, bounded


def finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "dead")


def deliveries(upstream, path: str) -> list:
    return [r for r in upstream.received if r.path == path]


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
