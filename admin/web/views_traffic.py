"""What went through a proxy: the request log, telemetry charts and the metrics history."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

from flask import render_template, request

from admin.web import bp
from admin.web.charts import bar_chart, line_chart
from admin.web.core_api import get, get_one
from admin.web.session import load_client, signed_in

INTERVALS = ("minute", "hour", "day", "month")
METRIC_RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6),
                 "24h": timedelta(days=1), "7d": timedelta(days=7)}  # fmt: skip
LOG_PAGE = 200
# validationData flags, in the order a request passes them, with what they mean
CHECKLIST = (
    ("proxyExists", "The proxy exists"),
    ("proxyActive", "The proxy is active"),
    ("proxyCredentialExists", "Its proxy credential exists"),
    ("proxyAuthenticated", "The caller presented the proxy credential"),
    ("proxyCredentialActive", "The proxy credential is active and not expired"),
    ("proxyCredentialRelationship", "The credential belongs to the proxy"),
    ("requestValid", "The request and its path are valid"),
    ("proxyCredentialScopeValid", "The proxy credential's rules allow it"),
    ("targetCredentialScopeValid", "The target credential's rules allow it"),
    ("proxyScopeValid", "The proxy's rules allow it"),
    ("targetScopeValid", "The target's rules allow it"),
    ("targetExists", "The target exists"),
    ("targetRelationship", "The target belongs to the proxy"),
    ("targetCredentialExists", "The target credential exists"),
    ("targetCredentialActive", "The target credential is active"),
    ("targetCredentialRelationship", "The target credential belongs to the proxy"),
    ("requestSent", "The request was sent to the target"),
    ("responseReceived", "The target answered"),
    ("systemError", "A gateway error happened (should be unchecked)"),
    ("requestConfigError", "A configuration error happened (should be unchecked)"),
)


def _proxy(client_id: str, proxy_id: str) -> dict:
    load_client(client_id)
    return get_one(f"/clients/{client_id}/proxies/{proxy_id}", "proxies")


def _utc(text: str | None) -> str | None:
    """A `datetime-local` input (read as UTC) as the API's ISO 8601."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()
    except ValueError:
        return None


def status_matches(status: int | None, wanted: str) -> bool:
    """`2xx`, `4xx`, `errors` (4xx and 5xx) or an exact status."""
    if not wanted:
        return True
    if status is None:
        return False
    if wanted == "errors":
        return status >= 400
    if len(wanted) == 3 and wanted.endswith("xx") and wanted[0].isdigit():
        return status // 100 == int(wanted[0])
    return wanted.isdigit() and status == int(wanted)


@bp.get("/c/<client_id>/proxies/<proxy_id>/requests")
@signed_in
def request_log(client_id: str, proxy_id: str):
    proxy = _proxy(client_id, proxy_id)
    filters = {k: request.args.get(k, "") for k in ("after", "before", "status")}
    answer = get(
        f"/clients/{client_id}/proxies/{proxy_id}/requests",
        limit=LOG_PAGE,
        processedAfter=_utc(filters["after"]),
        processedBefore=_utc(filters["before"]),
    )
    entries = [
        e for e in answer.items("requests")
        if status_matches(e["proxyData"].get("status"), filters["status"])
    ]  # fmt: skip
    return render_template(
        "web/requests.html", proxy=proxy, entries=entries, filters=filters, error=None
        if answer.ok else answer.message,
    )  # fmt: skip


@bp.get("/c/<client_id>/proxies/<proxy_id>/requests/<request_id>")
@signed_in
def request_detail(client_id: str, proxy_id: str, request_id: str):
    proxy = _proxy(client_id, proxy_id)
    entry = get_one(f"/clients/{client_id}/proxies/{proxy_id}/requests/{request_id}", "requests")
    checks = [(label, entry["validationData"].get(flag, False)) for flag, label in CHECKLIST]
    return render_template("web/request.html", proxy=proxy, entry=entry, checks=checks)


def _summed(records: list[dict], name: str, leg: str = "proxy") -> list[tuple[str, int]]:
    total: Counter = Counter()
    for record in records:
        for key, value in record.get(name, {}).items():
            member, _, record_leg = key.rpartition(":")
            if record_leg == leg:
                total[member] += value
    return total.most_common()


@bp.get("/c/<client_id>/proxies/<proxy_id>/telemetry")
@signed_in
def telemetry(client_id: str, proxy_id: str):
    proxy = _proxy(client_id, proxy_id)
    interval = request.args.get("interval", "hour")
    if interval not in INTERVALS:
        interval = "hour"
    records = get(
        f"/clients/{client_id}/proxies/{proxy_id}/telemetry", interval=interval, limit=60
    ).items("telemetry")
    labels = [r["sKey"] for r in records]

    def leg(name: str, which: str = "proxy") -> list:
        return [r.get(name, {}).get(which) for r in records]

    codes, countries = _summed(records, "codeCountMap"), _summed(records, "countryCountMap")
    charts = [
        line_chart("Requests", labels, {"caller (proxy leg)": leg("countMap"),
                                         "target leg": leg("countMap", "target")}),
        line_chart("Error rate", labels, {"proxy leg": leg("errorRateMap")}),
        line_chart(
            "Response time", labels,
            {"average": leg("averageResponseTimeMap"),
             "p90": [r.get("percentileResponseTimeMap", {}).get("p90:proxy") for r in records]},
            " ms",
        ),
        bar_chart("Status codes", [c for c, _ in codes], [n for _, n in codes]),
        bar_chart("Countries", [c for c, _ in countries], [n for _, n in countries]),
    ]  # fmt: skip
    return render_template(
        "web/telemetry.html",
        proxy=proxy,
        interval=interval,
        intervals=INTERVALS,
        charts=charts,
        records=records,
        total=sum(r.get("countMap", {}).get("proxy", 0) for r in records),
    )


@bp.get("/c/<client_id>/proxies/<proxy_id>/metrics")
@signed_in
def metrics(client_id: str, proxy_id: str):
    proxy = _proxy(client_id, proxy_id)
    span = request.args.get("range", "1h")
    if span not in METRIC_RANGES:
        span = "1h"
    end = datetime.now(UTC)
    points = get(
        f"/clients/{client_id}/proxies/{proxy_id}/metrics",
        **{"from": (end - METRIC_RANGES[span]).isoformat(), "to": end.isoformat()},
    ).body
    points = points if isinstance(points, list) else []
    labels = [p["capturedAt"][11:19] for p in points]
    # Points hold cumulative counts; the first one's own window has no baseline here.
    per_point = [None] + [b["requests"] - a["requests"] for a, b in itertools.pairwise(points)]
    latency = {"p90": [p["p90Ms"] for p in points], "1st percentile": [p["rt1Ms"] for p in points]}
    charts = [
        line_chart("Requests per point", labels, {"requests": per_point}),
        line_chart("Response time", labels, latency, " ms"),
        line_chart("Open connections", labels, {"open": [p["opn"] for p in points]}),
    ]
    return render_template(
        "web/metrics.html", proxy=proxy, span=span, spans=list(METRIC_RANGES), charts=charts,
        points=points,
    )  # fmt: skip
