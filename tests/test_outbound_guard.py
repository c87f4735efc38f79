"""The one outbound path refuses every internal address form, and never follows a redirect.

Three levels, all with real parts: the document fetcher on a real upstream
client and guard (every spelling, including those the admin already refuses
to store); target requests through a real data plane without the loopback
allowance (sync and async); and an async job whose target turns into a
refused address after it was accepted (it fails at once, without retries).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from addons.fetch import Fetcher, FetchFailed
from addons.ssrf import TargetGuard, parse_networks
from addons.upstream import Timeouts, UpstreamClient
from tests.async_support import finished, schedule, submit, user_api, wait_for_job
from tests.internal_server import (
    INTERNAL_MARKER,
    LOOPBACK_FORMS,
    OTHER_FORMS,
    Canned,
    InternalServer,
)
from tests.proxy_support import CALLER_KEY, Setup, call, start_proxy, wait_until_served
from tests.support import AdminServer, start_admin

AUTH = {"X-API-Key": CALLER_KEY}


async def fetch(url: str, allowed: str = "") -> bytes:
    """One fetch through a fresh client whose guard allows `allowed`."""
    client = UpstreamClient(TargetGuard(parse_networks(allowed)), Timeouts(2, 2))

    async def source() -> UpstreamClient:
        return client

    try:
        return await Fetcher(source).fetch(url, 64 * 1024, 2)
    finally:
        await client.close()


def fetch_failure(url: str, allowed: str = "") -> str:
    with pytest.raises(FetchFailed) as failed:
        asyncio.run(fetch(url, allowed))
    assert INTERNAL_MARKER not in str(failed.value)
    return failed.value.reason


def test_the_fetcher_refuses_every_internal_address_form():
    with InternalServer("127.0.0.1") as internal:
        port = internal.port
        urls = [f"http://{host}:{port}/doc" for host in LOOPBACK_FORMS]
        urls += [f"http://{host}/doc" for host in OTHER_FORMS]
        reasons = {url: fetch_failure(url) for url in urls}
        assert internal.hits == []
    assert set(reasons.values()) == {"refused"}, reasons


def test_an_allowance_never_opens_multicast_broadcast_unspecified_or_reserved():
    for never in ("224.0.0.1", "255.255.255.255", "0.0.0.0", "240.0.0.1", "[ff02::1]", "[::]"):
        assert fetch_failure(f"http://{never}/doc", "0.0.0.0/0, ::/0") == "refused", never


def test_spellings_of_an_allowed_address_are_that_address():
    """The guard judges what a name resolves to, so other spellings work when allowed.

    (aiohttp itself refuses some numeric spellings, such as 2130706433 and 127.1, as URLs.)
    """
    spellings = ("127.0.0.1", "localhost", "0x7f.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]")
    with InternalServer("127.0.0.1") as internal:
        internal.answers["/doc"] = Canned(200, b"{}")
        for host in spellings:
            assert asyncio.run(fetch(f"http://{host}:{internal.port}/doc", "127.0.0.1")) == b"{}"
        assert len(internal.hits) == len(spellings)


def test_the_fetcher_follows_no_redirect_and_echoes_no_body():
    with InternalServer("127.0.0.2") as internal, InternalServer("127.0.0.1") as allowed:
        allowed.answers["/doc"] = Canned(200, b"{}")
        for status in (301, 302, 303, 307, 308):
            for target in (internal.base_url, allowed.base_url):
                allowed.answers["/moved"] = Canned(
                    status, INTERNAL_MARKER.encode(), (("Location", f"{target}/doc"),)
                )
                assert fetch_failure(f"{allowed.base_url}/moved", "127.0.0.1") == "redirect"
        assert internal.hits == [] and "/doc" not in allowed.hits
        assert fetch_failure(f"{allowed.base_url}/forbidden", "127.0.0.1") == "status"
        assert fetch_failure(f"http://user:pw@127.0.0.1:{allowed.port}/doc", "127.0.0.1") == (
            "invalid-url"
        )


@pytest.fixture(scope="module")
def guarded(admin_server, tmp_path_factory):
    """A data plane with the SSRF guard as shipped: no loopback allowance."""
    proxy = start_proxy(
        admin_server, tmp_path_factory.mktemp("outbound-guarded"), allow_loopback=False
    )
    yield proxy
    proxy.stop()


def target_setup(api, base_url: str) -> Setup | None:
    """A proxy toward `base_url`; None when the admin refuses the URL itself."""
    try:
        return Setup(api, SimpleNamespace(base_url=base_url))
    except AssertionError as refused:
        assert "targetBaseURL" in str(refused), refused
        return None


def test_target_requests_to_every_internal_address_form_are_refused(api, guarded):
    with InternalServer("127.0.0.1") as internal:
        port = internal.port
        bases = [f"http://{host}:{port}" for host in LOOPBACK_FORMS]
        bases += [f"http://{host}" for host in OTHER_FORMS]
        refused = 0
        # Every proxy made first, then each checked: the data plane picks them up in one reload
        # instead of one wait per form.
        for base, made in [(base, target_setup(api, base)) for base in bases]:
            if made is None:
                continue
            sync = wait_until_served(guarded, f"/api/{made.id}/x", AUTH)
            queued = call(guarded, "POST", f"/async/{made.id}/x", headers=AUTH, data=b"{}")
            for response in (sync, queued):
                assert response.status_code == 403, (base, response.text)
                assert response.json()["error"]["code"] == "TARGET_ADDRESS_NOT_ALLOWED"
                text = response.text
                for leak in ("127.0.0.1", "::1", "169.254", "resolves to 1", "resolves to ["):
                    assert leak not in text or leak in base, (base, text)
            refused += 1
        assert internal.hits == []
    assert refused >= len(bases) // 2, "most forms reach the data plane's guard"


def test_a_targets_redirect_into_an_internal_address_is_not_followed(api, gateway):
    """The caller gets the target's 3xx as it came; the gateway itself goes nowhere else."""
    with InternalServer("127.0.0.2") as internal, InternalServer("127.0.0.1") as target:
        made = Setup(api, SimpleNamespace(base_url=target.base_url))
        wait_until_served(gateway, f"/api/{made.id}/x", AUTH)
        for status in (301, 302, 303, 307, 308):
            target.answers[f"/base/moved-{status}"] = Canned(
                status, b"{}", (("Location", f"{internal.base_url}/admin"),)
            )
            response = call(
                gateway, "GET", f"/api/{made.id}/moved-{status}", headers=AUTH,
                allow_redirects=False,  # the caller's client must not follow it either, here
            )  # fmt: skip
            assert response.status_code == status, response.text
            assert response.headers["Location"] == f"{internal.base_url}/admin"
        assert internal.hits == []


@pytest.fixture(scope="module")
def async_store(tmp_path_factory) -> AdminServer:
    """A store of its own: every proxy process on a store delivers its jobs."""
    server = start_admin(tmp_path_factory.mktemp("outbound-async"))
    yield server
    server.stop()


def test_an_async_job_whose_target_becomes_refused_fails_without_retries(async_store, tmp_path):
    api = user_api(async_store)
    gateway = start_proxy(
        async_store,
        tmp_path,
        *schedule(),
    )
    try:
        with InternalServer("127.0.0.1") as target:
            # Transient, retried after 3 s: time for the target to change first.
            target.answers["/base/job"] = Canned(503, b"{}", (("Retry-After", "3"),))
            target.answers["/base/x"] = Canned(200, b"{}")
            made = Setup(api, SimpleNamespace(base_url=target.base_url))
            wait_until_served(gateway, f"/api/{made.id}/x", AUTH)
            accepted = submit(gateway, made, "/job", data=b"{}")
            assert accepted.status_code == 202, accepted.text
            request_id = accepted.json()["requestId"]
            wait_for_job(api, made, request_id, lambda job: job["attemptCount"] >= 1)
            refused_base = None
            for base in ("http://224.0.0.1", "http://10.255.255.1"):
                changed = api.put(
                    f"{made.base}/targets/{made.target['sKey']}", json={"targetBaseURL": base}
                )
                if changed.status_code == 200:
                    refused_base = base
                    break
            assert refused_base, "the admin refused every internal base URL"
            live = wait_until_served(
                gateway, f"/api/{made.id}/x", AUTH, lambda r: r.status_code == 403
            )
            assert live.json()["error"]["code"] == "TARGET_ADDRESS_NOT_ALLOWED"
            job = wait_for_job(api, made, request_id, finished)
            assert job["status"] == "failed", job
            statuses = [attempt["status"] for attempt in job["attempts"]]
            assert statuses[-1] is None and set(statuses[:-1]) == {503}, job  # no retry after
            assert "does not connect" in (job["lastError"] or ""), job
    finally:
        gateway.stop()


def test_allowing_a_never_allowed_class_stops_the_data_plane_at_start_up(admin_server, tmp_path):
    with pytest.raises(RuntimeError) as failed:
        start_proxy(
            admin_server,
            tmp_path,
            "--set",
            "portcullis_allow_targets=127.0.0.1, 224.0.0.0/4",
            allow_loopback=False,
        )
    assert "224.0.0.0/4 is multicast; the gateway never connects there" in str(failed.value)
