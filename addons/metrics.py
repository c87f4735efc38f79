"""Prometheus `/metrics` of one data-plane process (issue 19), on its own listener.

`--set portcullis_metrics_port=N` (0: off, the default) serves `GET /metrics` on
`portcullis_metrics_host:N` (default 127.0.0.1) from prometheus_client's server thread;
never on the proxy port, where `/metrics` is routed like any other path.

On the event loop, the `response`/`error` hooks only add to plain dicts and ints
(`RequestCounts`); the scrape thread turns them into metric families (`GatewayCollector`),
reads the writers' queues and commit times, the configuration snapshot, and asks the store
for the async queue's figures (cached a few seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator

from mitmproxy import ctx, exceptions, http
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from addons.budget import BILLING_SUSPENDED
from addons.health import under_prefix
from addons.histogram import Histogram, HistogramReading
from addons.responses import (
    DENIED,
    TARGET_TIMEOUT,
    TARGET_UNREACHABLE,
    TOO_LARGE,
)
from addons.state import FlowState, state_of
from models.async_job import JOB_STATUSES, AsyncJob
from models.settings import Settings
from models.store import make_engine, make_session_factory

log = logging.getLogger("portcullis.metrics")
STORE_CACHE_S = 5.0  # the async queue's figures are asked of the store at most this often
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


# A streamed answer cut by the target leg (addons/response_stream.py): what went wrong.
STREAM_FAILURES = {
    TARGET_TIMEOUT: "timeout",
    TARGET_UNREACHABLE: "broken_answer",
    TOO_LARGE: "too_large",
}


def upstream_error_kind(state: FlowState) -> str | None:
    """What went wrong on the target leg: what the forward stage answered for
    (`FlowState.upstream_failure`), or why a streamed answer was cut."""
    return state.upstream_failure or STREAM_FAILURES.get(state.stream_outcome)


def limit_kind(state: FlowState, status: int) -> str | None:
    """Which limit refused the request: the rate limit, a usage meter, or the budget."""
    if status == 429 and state.proxy_code == DENIED:  # not a target's own 429
        check = state.limit_check
        return "rate_limit" if check is not None and not check.outcome.allowed else "meter"
    if state.proxy_code == BILLING_SUSPENDED:
        return "budget"
    return None


def own_path(flow: http.HTTPFlow, state: FlowState) -> bool:
    """The gateway's own paths (`/_portcullis/health`, the balancer's check each second) are
    not callers' requests: not counted, as the request log and telemetry leave them out."""
    return state.proxy is None and under_prefix(flow.request.path.partition("?")[0])


class RequestCounts:
    """What the loop counts: plain dicts and ints, read by the scrape thread."""

    def __init__(self):
        # (proxy id, leg, status class, proxy code) → requests
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.upstream_errors: dict[str, int] = {}
        self.limit_rejections: dict[tuple[str, str], int] = {}  # (proxy id, kind)
        self.overhead = Histogram()  # proxy seconds minus target seconds
        self.target = Histogram()  # target seconds

    def count(self, state: FlowState, response: http.Response) -> None:
        status = response.status_code
        proxy_id = state.proxy.id if state.proxy is not None else ""
        key = (
            proxy_id,
            "async" if state.is_async else "sync",
            STATUS_CLASSES.get(status // 100, "other"),
            state.stream_outcome or state.proxy_code or "",
        )
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        proxy_seconds = state.proxy_seconds
        target_seconds = state.target_seconds
        if proxy_seconds is not None:
            self.overhead.observe(max(0.0, proxy_seconds - (target_seconds or 0.0)))
        if target_seconds is not None:
            self.target.observe(target_seconds)
        if status >= 400:
            kind = upstream_error_kind(state)
            if kind is not None:
                self.upstream_errors[kind] = self.upstream_errors.get(kind, 0) + 1
            kind = limit_kind(state, status)
            if kind is not None:
                key2 = (proxy_id, kind)
                self.limit_rejections[key2] = self.limit_rejections.get(key2, 0) + 1


def histogram_family(name: str, doc: str, reading: HistogramReading, labels=None, values=()):
    family = HistogramMetricFamily(name, doc, labels=labels)
    family.add_metric(list(values), reading.cumulative(), reading.total)
    return family


class AsyncFigures:
    """The async queue's figures, asked of the store from the scrape thread, cached."""

    def __init__(self):
        self._sessions = None
        self._at = 0.0
        self._figures: dict[str, tuple[int, int]] | None = None  # status → (jobs, attempts)
        self._lock = threading.Lock()

    def read(self) -> dict[str, tuple[int, int]] | None:
        with self._lock:
            if self._figures is None or time.monotonic() - self._at >= STORE_CACHE_S:
                try:
                    self._figures = self._query()
                except Exception:  # a store down must not break the scrape
                    log.warning("could not read the async queue's figures", exc_info=True)
                    self._figures = None
                self._at = time.monotonic()
            return self._figures

    def _query(self) -> dict[str, tuple[int, int]]:
        if self._sessions is None:
            self._sessions = make_session_factory(make_engine(Settings.from_env().database_url))
        with self._sessions() as session:
            rows = session.execute(
                select(
                    AsyncJob.status,
                    func.count(),
                    func.coalesce(func.sum(AsyncJob.attempts_total), 0),
                ).group_by(AsyncJob.status)
            ).all()
        figures = dict.fromkeys(JOB_STATUSES, (0, 0))
        figures.update({status: (int(jobs), int(attempts)) for status, jobs, attempts in rows})
        return figures


class GatewayCollector(Collector):
    """Turns the loop's counts and the process's state into metric families, at scrape time."""

    def __init__(self, counts: RequestCounts, config, writers: Iterable, figures: AsyncFigures):
        self.counts = counts
        self.config = config
        self.writers = tuple(writers)
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        requests = CounterMetricFamily(
            "portcullis_requests",
            "Requests answered by this process, by proxy, leg, status class and proxy code.",
            labels=["proxy", "leg", "status_class", "proxy_code"],
        )
        for labels, value in counts.requests.copy().items():
            requests.add_metric(list(labels), value)
        yield requests
        yield histogram_family(
            "portcullis_gateway_overhead_seconds",
            "The gateway's own time per request: proxy seconds minus target seconds.",
            counts.overhead.snapshot(),
        )
        yield histogram_family(
            "portcullis_target_seconds",
            "The target's time per forwarded request: sent to complete answer.",
            counts.target.snapshot(),
        )
        errors = CounterMetricFamily(
            "portcullis_upstream_errors",
            "Target legs that failed, by kind.",
            labels=["kind"],
        )
        for kind in ("timeout", "unreachable", "broken_answer", "too_large", "egress"):
            errors.add_metric([kind], counts.upstream_errors.get(kind, 0))
        yield errors
        limits = CounterMetricFamily(
            "portcullis_limit_rejections",
            "Requests refused by a limit: rate limit, usage meter or budget, by proxy.",
            labels=["proxy", "kind"],
        )
        for labels, value in counts.limit_rejections.copy().items():
            limits.add_metric(list(labels), value)
        yield limits
        yield from self._writers()
        yield from self._config()
        yield from self._async()

    def _writers(self) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "portcullis_writer_queued_items",
            "Rows waiting for a store writer thread.",
            labels=["writer"],
        )
        batches = HistogramMetricFamily(
            "portcullis_writer_batch_seconds",
            "How long a writer thread took to commit a batch.",
            labels=["writer"],
        )
        for owner in self.writers:
            writer = getattr(owner, "writer", None)
            if writer is None:
                continue
            queued.add_metric([writer.name], writer.queued())
            reading = writer.batch_seconds()
            batches.add_metric([writer.name], reading.cumulative(), reading.total)
        yield queued
        yield batches

    def _config(self) -> Iterator[Metric]:
        source = getattr(self.config, "source", None)
        if source is None:
            return
        yield GaugeMetricFamily(
            "portcullis_config_version",
            "Version of the configuration snapshot this process serves (-1: none yet).",
            value=source.current.version,
        )
        installed_at = source.installed_at
        if installed_at is not None:
            yield GaugeMetricFamily(
                "portcullis_config_installed_timestamp_seconds",
                "When this process installed its current configuration snapshot (epoch).",
                value=installed_at,
            )
            yield GaugeMetricFamily(
                "portcullis_config_age_seconds",
                "Seconds since this process installed its current configuration snapshot.",
                value=max(0.0, time.time() - installed_at),
            )
        confirmed_at = source.freshness.confirmed_at
        if confirmed_at is not None:
            yield GaugeMetricFamily(
                "portcullis_config_confirmed_age_seconds",
                "Seconds since the store last confirmed this process's snapshot current.",
                value=time.monotonic() - confirmed_at,
            )

    def _async(self) -> Iterator[Metric]:
        figures = self.figures.read()
        if figures is None:
            return
        jobs = GaugeMetricFamily(
            "portcullis_async_jobs",
            "Async jobs the store holds, by state (store-wide: every process reports the same).",
            labels=["state"],
        )
        attempts = GaugeMetricFamily(
            "portcullis_async_attempts",
            "Delivery attempts made for the async jobs the store holds, by job state.",
            labels=["state"],
        )
        for status, (count, tried) in figures.items():
            jobs.add_metric([status], count)
            attempts.add_metric([status], tried)
        yield jobs
        yield attempts
        yield GaugeMetricFamily(
            "portcullis_async_queue_depth",
            "Async jobs waiting for a delivery attempt (queued), store-wide.",
            value=figures["queued"][0],
        )
        yield GaugeMetricFamily(
            "portcullis_async_dead_letters",
            "Async jobs whose retries ran out (dead), store-wide.",
            value=figures["dead"][0],
        )


class Metrics:
    """Counts answered requests on the loop; serves them on `portcullis_metrics_port`."""

    def __init__(self, config, writers: tuple = ()):
        """`writers`: the stages whose `.writer` (a BatchWriter, once running) is reported.
        The async queue's figures are the store's, asked at scrape time."""
        self.config = config
        self.counts = RequestCounts()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(self.counts, config, writers, AsyncFigures()))
        self._server = None
        self._bound: tuple[str, int] | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_metrics_port",
            int,
            0,
            "Serve Prometheus GET /metrics on this port (0: off); never on the proxy port.",
        )
        loader.add_option(
            "portcullis_metrics_host",
            str,
            "127.0.0.1",
            "Address the metrics listener binds (portcullis_metrics_port).",
        )

    def configure(self, updated) -> None:
        if not {"portcullis_metrics_port", "portcullis_metrics_host"} & updated:
            return
        port = ctx.options.portcullis_metrics_port
        host = ctx.options.portcullis_metrics_host
        if not 0 <= port <= 65535:
            raise exceptions.OptionsError("portcullis_metrics_port must be 0..65535")
        if (host, port) == self._bound:
            return
        self._stop_server()
        if port:
            try:
                self._server, _ = start_http_server(port, host, registry=self.registry)
            except OSError as exc:
                raise exceptions.OptionsError(
                    f"portcullis_metrics_port: cannot listen on {host}:{port}: {exc}"
                ) from exc
            self._bound = (host, port)
            log.info("metrics on http://%s:%d/metrics", host, port)

    def done(self) -> None:
        self._stop_server()

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._bound = None

    def response(self, flow: http.HTTPFlow) -> None:
        try:
            state = state_of(flow)
            if state is not None and flow.response is not None and not own_path(flow, state):
                self.counts.count(state, flow.response)
        except Exception:  # counting must never touch the answer
            log.exception("could not count a request for metrics")

    def error(self, flow: http.HTTPFlow) -> None:
        """A streamed answer broken off ends here, not in `response`: its head went out."""
        try:
            state = state_of(flow)
            if state is not None and state.streamed and flow.response is not None:
                self.counts.count(state, flow.response)
        except Exception:
            log.exception("could not count a request for metrics")
