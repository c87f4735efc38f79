"""Prometheus `/metrics` (issue 19): the admin's and each data-plane process's, scraped and
parsed with the Prometheus text parser, their counts checked against the requests sent.

A store of its own (the async queue's gauges are store-wide), a real admin with a metrics
token, real `run_proxy.py` processes with `--set portcullis_metrics_port`, the recording
upstream, and a closed port for an unreachable target.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.balancer import consecutive_free_ports
from tests.async_support import AUTH, finished, submit, user_api, wait_for_job
from tests.proxy_support import Setup, call, free_port, start_proxy, wait_until_served
from tests.support import (
    ROOT,
    AdminServer,
    Api,
    admin_env,
    assert_error,
    create,
    start_admin,
)
from tools.run_gateway import metrics_args

TOKEN = "metrics-token-0123456789"
SCRAPE_TIMEOUT_S = 15
TIMEOUT_MS = 1000  # the data planes' wait for a target's answer

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory) -> AdminServer:
    server = start_admin(tmp_path_factory.mktemp("metrics-admin"), PORTCULLIS_METRICS_TOKEN=TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(admin_server) -> Api:
    return user_api(admin_server)


def metrics_gateway(admin_server, var_dir):
    """A data plane with its metrics listener on a port of its own; (process, metrics URL)."""
    port = free_port()
    proxy = start_proxy(
        admin_server,
        var_dir,
        *("--set", f"portcullis_metrics_port={port}"),
        *("--set", f"portcullis_target_timeout_ms={TIMEOUT_MS}"),
    )
    return proxy, f"http://127.0.0.1:{port}/metrics"


@pytest.fixture(scope="module")
def gateway(admin_server, tmp_path_factory):
    proxy, url = metrics_gateway(admin_server, tmp_path_factory.mktemp("metrics-proxy"))
    proxy.metrics_url = url
    yield proxy
    proxy.stop()


def scrape(url: str, headers: dict | None = None) -> Samples:
    """Every sample of a `/metrics` answer, parsed by prometheus_client's text parser."""
    response = requests.get(url, headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels) -> float:
    """The sum over the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def scrape_until(url: str, check, headers: dict | None = None) -> Samples:
    """Scrape until `check(samples)` holds (the loop counts after the answer went out)."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        samples = scrape(url, headers)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)  # polling a real process's counters, bounded by the deadline


def served(gateway, made: Setup) -> None:
    probe = wait_until_served(gateway, f"/api/{made.id}/probe", AUTH)
    assert probe.status_code == 200, probe.text


def test_the_data_plane_counts_what_it_answered(admin_server, api, upstream, gateway):
    made = Setup(api, upstream, proxyMaxRequestsPerDay=4)
    made.rule(f"proxies/{made.id}", {"effect": "deny", "pathPattern": "^/private"})
    dead = Setup(api, SimpleNamespace(base_url=f"http://127.0.0.1:{free_port()}"))
    served(gateway, made)  # 1 of the 4 a day
    wait_until_served(gateway, f"/api/{dead.id}/x", AUTH, lambda r: r.status_code == 502)
    before = scrape(gateway.metrics_url)

    sent = {
        ("2xx", "proxy-access-granted"): [
            call(gateway, "GET", f"/api/{made.id}/ok/{i}", headers=AUTH) for i in range(2)
        ],
        ("4xx", "proxy-access-denied"): [
            call(gateway, "GET", f"/api/{made.id}/private/x", headers=AUTH)
        ],
    }
    accepted = submit(gateway, made, "/hook", json={"event": "e"})  # the 4th of the day
    limited = call(gateway, "GET", f"/api/{made.id}/ok/9", headers=AUTH)
    unreachable = call(gateway, "GET", f"/api/{dead.id}/x", headers=AUTH)
    unknown = call(gateway, "GET", "/api/prx_unknown000000000000000/x", headers=AUTH)
    assert [r.status_code for r in sent[("2xx", "proxy-access-granted")]] == [200, 200]
    assert sent[("4xx", "proxy-access-denied")][0].status_code == 403
    assert accepted.status_code == 202, accepted.text
    assert_error(limited, 429, "RATE_LIMITED")
    assert unreachable.status_code == 502 and unknown.status_code == 404

    expected = {
        (made.id, "sync", "2xx", "proxy-access-granted"): 2,
        (made.id, "sync", "4xx", "proxy-access-denied"): 2,  # the rule's 403, the 429
        (made.id, "async", "2xx", "proxy-access-granted"): 1,
        (dead.id, "sync", "5xx", "target-unreachable"): 1,
        ("", "sync", "4xx", "proxy-access-denied"): 1,
    }
    requests_sent = sum(expected.values())

    def delta(samples: Samples, name: str, **labels) -> float:
        return total(samples, name, **labels) - total(before, name, **labels)

    def counted(samples: Samples) -> bool:
        return delta(samples, "portcullis_requests_total") >= requests_sent

    after = scrape_until(gateway.metrics_url, counted)
    for (proxy, leg, status_class, code), count in expected.items():
        labels = dict(proxy=proxy, leg=leg, status_class=status_class, proxy_code=code)
        assert delta(after, "portcullis_requests_total", **labels) == count, (labels, after)
    assert delta(after, "portcullis_requests_total") == requests_sent
    # every answer has the gateway's own time; only the two forwarded ones a target's
    assert delta(after, "portcullis_gateway_overhead_seconds_count") == requests_sent
    assert delta(after, "portcullis_gateway_overhead_seconds_bucket", le="+Inf") == requests_sent
    assert delta(after, "portcullis_target_seconds_count") == 2
    assert delta(after, "portcullis_upstream_errors_total", kind="unreachable") == 1
    assert delta(after, "portcullis_upstream_errors_total") == 1
    assert delta(after, "portcullis_limit_rejections_total", proxy=made.id, kind="rate_limit") == 1
    assert delta(after, "portcullis_limit_rejections_total") == 1

    # the async job, delivered by the dispatcher: the store-wide gauges see it
    wait_for_job(api, made, accepted.json()["requestId"], finished)
    gauges = scrape_until(
        gateway.metrics_url,
        lambda s: value(s, "portcullis_async_jobs", state="succeeded") == 1,
    )
    assert value(gauges, "portcullis_async_jobs", state="succeeded") == 1
    assert value(gauges, "portcullis_async_attempts", state="succeeded") == 1
    assert value(gauges, "portcullis_async_queue_depth") == 0
    assert value(gauges, "portcullis_async_dead_letters") == 0
    # the writers and the configuration
    assert (
        total(gauges, "portcullis_writer_batch_seconds_count", writer="portcullis-request-log") >= 1
    )
    assert (
        "portcullis_writer_queued_items",
        frozenset({("writer", "portcullis-telemetry")}),
    ) in gauges
    assert value(gauges, "portcullis_config_version") >= 1
    assert value(gauges, "portcullis_config_confirmed_age_seconds") >= 0
    assert value(gauges, "portcullis_config_installed_timestamp_seconds") <= time.time()
    assert value(gauges, "portcullis_config_age_seconds") >= 0


@pytest.fixture
def broken_target():
    """A target that answers every connection with bytes that are not HTTP, then hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield SimpleNamespace(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    listener.close()


def test_upstream_errors_are_counted_by_kind(api, upstream, gateway, broken_target):
    small = Setup(api, upstream, proxyMaxResponseBytes=8)
    broken = Setup(api, broken_target)
    dead = Setup(api, SimpleNamespace(base_url=f"http://127.0.0.1:{free_port()}"))
    egress = Setup(api, upstream)  # through a SOCKS proxy nobody listens on
    url = f"socks5://127.0.0.1:{free_port()}"
    put = api.put(
        f"{egress.base}/targets/{egress.target['sKey']}",
        json={"targetEgress": {"mode": "proxy", "url": url}},
    )
    assert put.status_code == 200, put.text
    for made in (small, broken, dead):
        wait_until_served(gateway, f"/api/{made.id}/x", AUTH)
    wait_until_served(gateway, f"/api/{egress.id}/x", AUTH, lambda r: r.status_code == 502)
    before = scrape(gateway.metrics_url)
    answers = {
        "timeout": call(gateway, "GET", f"/api/{small.id}/delay/{3 * TIMEOUT_MS}", headers=AUTH),
        "too_large": call(gateway, "GET", f"/api/{small.id}/status/200", headers=AUTH),
        "broken_answer": call(gateway, "GET", f"/api/{broken.id}/x", headers=AUTH),
        "unreachable": call(gateway, "GET", f"/api/{dead.id}/x", headers=AUTH),
        "egress": call(gateway, "GET", f"/api/{egress.id}/x", headers=AUTH),
    }
    codes = {kind: answer.status_code for kind, answer in answers.items()}
    assert codes == {
        "timeout": 504,
        "too_large": 413,
        "broken_answer": 502,
        "unreachable": 502,
        "egress": 502,
    }
    assert answers["egress"].json()["error"]["code"] == "EGRESS_PROXY_FAILED"

    def delta(samples: Samples, kind: str) -> float:
        name = "portcullis_upstream_errors_total"
        return value(samples, name, kind=kind) - value(before, name, kind=kind)

    after = scrape_until(gateway.metrics_url, lambda s: sum(delta(s, k) for k in codes) >= 5)
    assert {kind: delta(after, kind) for kind in codes} == dict.fromkeys(codes, 1)


def test_limit_rejections_are_counted_by_kind(api, upstream, gateway):
    """The rate limit's 429 is counted in the first test; here a meter's 429 and the
    budget's 402, each under its proxy."""
    metered = Setup(api, upstream)
    meter = {"meterName": "calls", "meterType": "request_count", "limits": {"day": 1}}
    create(api, f"{metered.base}/proxies/{metered.id}/meters", meter, "meters")
    paid = Setup(api, upstream)
    price = api.put(f"{paid.base}/proxies/{paid.id}/price", json={"perRequest": "0.25"})
    assert price.status_code == 200, price.text
    for made, status in ((metered, 429), (paid, 402)):
        probe = wait_until_served(
            gateway, f"/api/{made.id}/p", AUTH, lambda r, s=status: r.status_code == s
        )
        assert probe.status_code == status, probe.text
    before = scrape(gateway.metrics_url)
    for _ in range(2):
        assert_error(
            call(gateway, "GET", f"/api/{metered.id}/x", headers=AUTH), 429, "METER_LIMIT_EXCEEDED"
        )
    for _ in range(3):
        assert_error(
            call(gateway, "GET", f"/api/{paid.id}/x", headers=AUTH), 402, "BILLING_SUSPENDED"
        )
    name = "portcullis_limit_rejections_total"
    expected = {(metered.id, "meter"): 2, (paid.id, "budget"): 3}

    def deltas(samples: Samples) -> dict:
        return {
            (proxy, kind): value(samples, name, proxy=proxy, kind=kind)
            - value(before, name, proxy=proxy, kind=kind)
            for proxy, kind in expected
        }

    after = scrape_until(gateway.metrics_url, lambda s: deltas(s) == expected)
    assert deltas(after) == expected
    assert total(after, name, kind="rate_limit") == total(before, name, kind="rate_limit")
    assert total(after, name) - total(before, name) == 5


def test_metrics_are_not_served_on_the_proxy_port(gateway):
    answer = call(gateway, "GET", "/metrics")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert "portcullis_requests" not in answer.text


def test_each_data_plane_process_counts_its_own(admin_server, api, upstream, gateway, tmp_path):
    other, other_url = metrics_gateway(admin_server, tmp_path / "second")
    try:
        made = Setup(api, upstream)
        served(gateway, made)
        served(other, made)
        before = [scrape(gateway.metrics_url), scrape(other_url)]
        for process, count in ((gateway, 3), (other, 5)):
            for i in range(count):
                assert (
                    call(process, "GET", f"/api/{made.id}/n/{i}", headers=AUTH).status_code == 200
                )
        labels = dict(
            proxy=made.id, leg="sync", status_class="2xx", proxy_code="proxy-access-granted"
        )
        for url, earlier, count in ((gateway.metrics_url, before[0], 3), (other_url, before[1], 5)):

            def grown(samples, earlier=earlier, count=count):
                now = value(samples, "portcullis_requests_total", **labels)
                return now - value(earlier, "portcullis_requests_total", **labels) >= count

            samples = scrape_until(url, grown)
            grew = value(samples, "portcullis_requests_total", **labels)
            assert grew - value(earlier, "portcullis_requests_total", **labels) == count
    finally:
        other.stop()


def test_a_taken_metrics_port_stops_the_start(admin_server, gateway, tmp_path):
    taken = gateway.metrics_url.rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(RuntimeError, match="portcullis_metrics_port"):
        start_proxy(admin_server, tmp_path / "clash", "--set", f"portcullis_metrics_port={taken}")


def test_the_admin_counts_its_requests_by_rule_behind_a_token(admin_server, api, upstream):
    url = admin_server.base_url + "/metrics"
    refused = requests.get(url, timeout=10)
    assert_error(refused, 401, "UNAUTHORIZED")
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert_error(wrong, 401, "UNAUTHORIZED")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    before = scrape(url, headers)
    made = Setup(api, upstream)
    for _ in range(3):
        assert api.get(f"{made.base}/proxies/{made.id}").status_code == 200
    assert requests.get(admin_server.base_url + "/no/such/page", timeout=10).status_code == 404
    after = scrape(url, headers)

    rule = "/api/clients/<client_id>/proxies/<proxy_id>"
    name = "portcullis_admin_http_requests_total"
    ok = dict(method="GET", status_class="2xx")
    assert value(after, name, endpoint=rule, **ok) - value(before, name, endpoint=rule, **ok) == 3
    miss = dict(endpoint="(unmatched)", method="GET", status_class="4xx")
    assert value(after, name, **miss) - value(before, name, **miss) == 1
    latency = "portcullis_admin_http_request_seconds_count"
    assert value(after, latency, endpoint=rule) - value(before, latency, endpoint=rule) == 3
    assert not any(made.id in dict(k).get("endpoint", "") for _, k in after)  # rules, not paths
    # the store's gauges are cached a few seconds: the new proxy shows within the deadline
    gauges = scrape_until(url, lambda s: value(s, "portcullis_admin_proxies") >= 1, headers)
    assert value(gauges, "portcullis_admin_proxies") >= 1
    assert ("portcullis_admin_async_jobs", frozenset({("state", "dead")})) in after
    assert ("portcullis_admin_async_dead_letters", frozenset()) in after


UNKNOWN = dict(proxy="", leg="sync", status_class="4xx", proxy_code="proxy-access-denied")


def test_run_gateway_gives_each_worker_a_metrics_port(tmp_path):
    """`tools/run_gateway.py --metrics-port-base M` (make run WORKERS=N): worker n on M+n-1,
    each counting what it answered (not the balancer's health checks)."""
    env = {**admin_env(tmp_path / "var"), "PORTCULLIS_RUN_PROXY_ARGS": ""}
    subprocess.run([sys.executable, "run_admin.py", "migrate"], cwd=ROOT, env=env, check=True)
    workers, metrics = consecutive_free_ports(2), consecutive_free_ports(2)
    ports = [str(free_port()) for _ in range(3)]
    log_path = tmp_path / "run_gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "tools/run_gateway.py", "--workers", "2",
                "--proxy-port", ports[0], "--admin-port", ports[1], "--stats-port", ports[2],
                "--worker-port-base", str(workers), "--metrics-port-base", str(metrics),
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        urls = [f"http://127.0.0.1:{metrics + n}/metrics" for n in range(2)]
        before = [scrape_when_up(url, process, log_path) for url in urls]
        for n in range(2):
            for _ in range(n + 2):
                answer = requests.get(
                    f"http://127.0.0.1:{workers + n}/api/prx_unknown00000000000000/x", timeout=10
                )
                assert answer.status_code == 404
        name = "portcullis_requests_total"
        for n, url in enumerate(urls):
            earlier = value(before[n], name, **UNKNOWN)
            samples = scrape_until(
                url, lambda s, e=earlier, n=n: value(s, name, **UNKNOWN) - e >= n + 2
            )
            assert value(samples, name, **UNKNOWN) - earlier == n + 2, log_path.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def scrape_when_up(url: str, process: subprocess.Popen, log_path) -> Samples:
    deadline = time.monotonic() + 60
    while True:
        try:
            return scrape(url)
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log_path.read_text()) from None
        time.sleep(0.1)  # polling for a starting worker's listener, bounded by the deadline


@pytest.mark.parametrize(
    "proxy_args", [["--set", "portcullis_metrics_port=9100"], ["--set=portcullis_metrics_port=9"]]
)
def test_run_gateway_refuses_one_metrics_port_for_every_worker(proxy_args):
    with pytest.raises(SystemExit, match="--metrics-port-base"):
        metrics_args(proxy_args, 9200)
    assert metrics_args(["-q"], 9200) == ["--set", "portcullis_metrics_port=9200"]
    assert metrics_args(["-q"], None) == []


def test_without_a_token_the_admins_metrics_are_open(lone):
    """PORTCULLIS_METRICS_TOKEN unset: no Authorization needed (the admin binds 127.0.0.1)."""
    server, _ = lone
    samples = scrape(server.base_url + "/metrics")
    assert ("portcullis_admin_proxies", frozenset()) in samples
