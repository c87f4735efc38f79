"""Prometheus `GET /metrics` of the admin (issue 19).

The admin's own HTTP requests by endpoint (the Flask rule, never the raw path: paths carry
ids and invite tokens), method and status class, with a latency histogram; and store gauges
computed at scrape time (async jobs by state, dead letters, proxies), cached a few seconds.

Access: with `PORTCULLIS_METRICS_TOKEN` set, only `Authorization: Bearer <token>` (compared in
constant time; 401 JSON otherwise). Unset, the endpoint is open: the admin listens on
127.0.0.1 by default, so only what runs on the host (or the operator's reverse proxy) sees it.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from admin.errors import error_response
from admin.extensions import db
from models.async_job import JOB_STATUSES, AsyncJob
from models.proxy import Proxy

log = logging.getLogger("portcullis.metrics")
TOKEN_ENV = "PORTCULLIS_METRICS_TOKEN"
STORE_CACHE_S = 3.0
EXTENSION = "portcullis_metrics"
UNMATCHED = "(unmatched)"  # a request no rule matched (404): one label, not one per path
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Prometheus text, not JSON: left out of the OpenAPI document (`bare_` endpoints are, see
# admin/openapi.py build_spec and tests/test_openapi.py).
bp = Blueprint("bare_metrics", __name__)


def metrics_token() -> str | None:
    """The bearer token `/metrics` requires, or None: open (read per request, like a setting)."""
    return os.environ.get(TOKEN_ENV) or None


class StoreGauges(Collector):
    """Async jobs by state, dead letters and proxies, asked of the store at most every few s."""

    def __init__(self, app: Flask):
        self.app = app
        self._lock = threading.Lock()
        self._at = 0.0
        self._figures: tuple[dict[str, int], int] | None = None

    def describe(self) -> list[Metric]:
        """The families' names, for the registry's check at registration: no store query."""
        return list(self._families({}, 0))

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._figures is None or time.monotonic() - self._at >= STORE_CACHE_S:
                try:
                    self._figures = self._query()
                except Exception:  # a store down must not fail the scrape of the rest
                    log.warning("could not read the store's figures for /metrics", exc_info=True)
                    self._figures = None
                self._at = time.monotonic()
            figures = self._figures
        if figures is not None:
            yield from self._families(*figures)

    @staticmethod
    def _families(jobs: dict[str, int], proxies: int) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "portcullis_admin_async_jobs", "Async jobs in the store, by state.", labels=["state"]
        )
        for state in JOB_STATUSES:
            family.add_metric([state], jobs.get(state, 0))
        yield family
        yield GaugeMetricFamily(
            "portcullis_admin_async_dead_letters",
            "Async jobs whose retries ran out (dead).",
            value=jobs.get("dead", 0),
        )
        yield GaugeMetricFamily("portcullis_admin_proxies", "Proxies in the store.", value=proxies)

    def _query(self) -> tuple[dict[str, int], int]:
        with self.app.app_context():
            rows = db.session.execute(
                select(AsyncJob.status, func.count()).group_by(AsyncJob.status)
            ).all()
            proxies = db.session.scalar(select(func.count()).select_from(Proxy)) or 0
        return {status: int(count) for status, count in rows}, int(proxies)


class AdminMetrics:
    """One app's registry: tests build many apps, each counts its own."""

    def __init__(self, app: Flask):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "portcullis_admin_http_requests",
            "The admin's HTTP requests, by endpoint (Flask rule), method and status class.",
            ["endpoint", "method", "status_class"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "portcullis_admin_http_request_seconds",
            "How long the admin took to answer a request, by endpoint (Flask rule).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StoreGauges(app))


def init_metrics(app: Flask) -> None:
    """Count every request of `app` and serve `GET /metrics` (the one line in create_app)."""
    app.extensions[EXTENSION] = AdminMetrics(app)
    app.before_request_funcs.setdefault(None, []).insert(0, _started)  # before any refusal
    app.after_request(_count)
    app.register_blueprint(bp)


def _started() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    metrics: AdminMetrics = current_app.extensions[EXTENSION]
    rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    metrics.requests.labels(rule, request.method, f"{response.status_code // 100}xx").inc()
    started = g.get("metrics_started")
    if started is not None:
        metrics.latency.labels(rule).observe(time.perf_counter() - started)
    return response


@bp.get("/metrics")
def metrics():
    """The admin's metrics in the Prometheus text format."""
    token = metrics_token()
    if token is not None:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return error_response(
                401, "UNAUTHORIZED", "GET /metrics needs Authorization: Bearer <metrics token>"
            )
    registry = current_app.extensions[EXTENSION].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
