"""What went through a proxy: the request log, telemetry charts and the metrics history."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app, render_template, request

from admin.web import bp
from admin.web.charts import bar_chart, line_chart
from admin.web.core_api import get, get_one
from admin.web.session import load_client, signed_in
from models.periods import POINT_SECONDS

INTERVALS = ("minute", "hour", "day", "month")
METRIC_RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6),
                 "24h": timedelta(days=1), "7d": timedelta(days=7)}  # fmt: skip
LOG_PAGE = 200
# validationData flags, in the order a request passes them: what it means when the check
# went well, what when it did not. The last two are errors: they go well when unset.
CHECKLIST = (
    ("proxyExists", "The proxy exists", "The proxy does not exist"),
    ("proxyActive", "The proxy is active", "The proxy is not active"),
    ("proxyCredentialExists", "Its proxy credential exists", "Its proxy credential is missing"),
    ("proxyAuthenticated", "The caller presented the proxy credential",
     "The caller did not present the proxy credential"),
    ("proxyCredentialActive", "The proxy credential is active and not expired",
     "The proxy credential is inactive or expired"),
    ("proxyCredentialRelationship", "The credential belongs to the proxy",
     "The credential does not belong to the proxy"),
    ("requestValid", "The request and its path are valid", "The request or its path is invalid"),
    ("proxyCredentialScopeValid", "The proxy credential's rules allow it",
     "The proxy credential's rules deny it"),
    ("targetCredentialScopeValid", "The target credential's rules allow it",
     "The target credential's rules deny it"),
    ("proxyScopeValid", "The proxy's rules allow it", "The proxy's rules deny it"),
    ("targetScopeValid", "The target's rules allow it", "The target's rules deny it"),
    ("targetExists", "The target exists", "The target does not exist"),
    ("targetRelationship", "The target belongs to the proxy",
     "The target does not belong to the proxy"),
    ("targetCredentialExists", "The target credential exists", "The target credential is missing"),
    ("targetCredentialActive", "The target credential is active",
     "The target credential is not active"),
    ("targetCredentialRelationship", "The target credential belongs to the proxy",
     "The target credential does not belong to the proxy"),
    ("requestSent", "The request was sent to the target", "The request was not sent to the target"),
    ("responseReceived", "The target answered", "The target did not answer"),
)  # fmt: skip
ERROR_FLAGS = (
    ("systemError", "No gateway error", "A gateway error happened"),
    ("requestConfigError", "No configuration error", "A configuration error stopped it"),
)
COUNTRY_WORDS = {"XX": "unknown"}  # the data plane's code for loopback and unknown addresses
# proxyData.streamOutcome: why a streamed answer ended before the target's end (issue 18)
STREAM_OUTCOMES = {
    "response-too-large": "cut: the answer grew past the proxy's size limit",
    "target-timeout": "cut: the target sent nothing for longer than the read timeout",
    "target-unreachable": "cut: the target broke off",
    "caller-disconnected": "the caller left before the end (the target's request was closed)",
}
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


@dataclass(frozen=True)
class Check:
    """One line of a request's checklist: `state` is `ok`, `bad` or `skipped` (not reached)."""

    state: str
    words: str

    @property
    def mark(self) -> str:
        return {"ok": "✓", "bad": "✗", "skipped": "–"}[self.state]


def checklist(validation: dict) -> list[Check]:
    """The request's checks in words that read as good or bad as they are: after the first
    failed check, the later unset ones were never reached (not failed)."""
    checks, failed = [], False
    for flag, good, bad in CHECKLIST:
        if validation.get(flag, False):
            checks.append(Check("ok", good))
        elif failed:
            checks.append(Check("skipped", f"Not reached: {good[0].lower()}{good[1:]}"))
        else:
            checks.append(Check("bad", bad))
            failed = True
    for flag, good, bad in ERROR_FLAGS:
        checks.append(Check("bad", bad) if validation.get(flag) else Check("ok", good))
    return checks


def outcome(entry: dict) -> tuple[bool, str]:
    """(went well, one sentence): what happened to the request, as its caller saw it."""
    status = entry["proxyData"].get("status")
    target = entry.get("targetData") or {}
    if status is None:
        return False, "No answer was recorded for this request."
    if status < 400:
        if not entry["validationData"].get("requestSent"):  # e.g. an async job queued (202)
            return True, f"Accepted by the gateway ({status}): {entry['proxyData'].get('message')}"
        return True, f"Delivered: the target answered {target.get('status', status)}."
    if target.get("status") is not None and target["status"] == status:
        return False, f"Delivered, but the target answered {status}."
    if entry["validationData"].get("requestSent"):
        return False, f"Sent to the target, but it failed: the caller got {status}."
    message = entry["proxyData"].get("message") or "refused"
    return False, f"Stopped by the gateway ({status}): {message}"


def human_bytes(size: int | None) -> str:
    """`1.5 MiB`: a byte count as a reader takes it in; `—` when none was recorded."""
    if size is None:
        return "—"
    value = float(size)
    for unit in BYTE_UNITS:
        if value < 1024 or unit == BYTE_UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def mcp_calls(entry: dict) -> list[dict]:
    """The JSON-RPC calls of an MCP request as `{method, tool}` each (a batch: every element);
    none for other requests."""
    mcp = entry["proxyData"].get("mcp")
    if not isinstance(mcp, dict):
        return []
    calls = mcp["batch"] if isinstance(mcp.get("batch"), list) else [mcp]
    return [c for c in calls if isinstance(c, dict)]


def mcp_words(call: dict) -> str:
    """`tools/call search`, `tools/list`: one call as the log shows it."""
    return " ".join(str(part) for part in (call.get("method"), call.get("tool")) if part)


def stream_words(entry: dict) -> str:
    """How the answer went to the caller: `streamed`, `streamed, cut: …`, or `buffered`."""
    data = entry["proxyData"]
    if not data.get("streamed"):
        return "buffered"
    outcome = data.get("streamOutcome")
    return f"streamed, {STREAM_OUTCOMES.get(outcome, outcome)}" if outcome else "streamed"


TRAFFIC_HELPERS = {
    "human_bytes": human_bytes,
    "mcp_calls": mcp_calls,
    "mcp_words": mcp_words,
    "stream_words": stream_words,
}


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
        if answer.ok else answer.message, **TRAFFIC_HELPERS,
        # the MCP column: on MCP proxies, and wherever a listed request has calls (the flag
        # may have been switched off since)
        show_mcp=bool(proxy.get("proxyMcp")) or any(mcp_calls(e) for e in entries),
    )  # fmt: skip


@bp.get("/c/<client_id>/proxies/<proxy_id>/requests/<request_id>")
@signed_in
def request_detail(client_id: str, proxy_id: str, request_id: str):
    proxy = _proxy(client_id, proxy_id)
    entry = get_one(f"/clients/{client_id}/proxies/{proxy_id}/requests/{request_id}", "requests")
    return render_template(
        "web/request.html",
        proxy=proxy,
        entry=entry,
        checks=checklist(entry["validationData"]),
        outcome=outcome(entry),
        **TRAFFIC_HELPERS,
    )


def _summed(records: list[dict], name: str, leg: str = "proxy") -> list[tuple[str, int]]:
    total: Counter = Counter()
    for record in records:
        for key, value in record.get(name, {}).items():
            member, _, record_leg = key.rpartition(":")
            if record_leg == leg:
                total[member] += value
    return total.most_common()


def _summed_members(records: list[dict], name: str) -> list[tuple[str, int]]:
    """A map keyed by member only (`toolCountMap`, `egressCountMap`), summed over records."""
    total: Counter = Counter()
    for record in records:
        total.update(record.get(name, {}))
    return total.most_common()


def _telemetry_records(client_id: str, proxy_id: str, interval: str) -> list[dict]:
    return get(
        f"/clients/{client_id}/proxies/{proxy_id}/telemetry", interval=interval, limit=60
    ).items("telemetry")


def freshest_view(client_id: str, proxy_id: str) -> tuple[str, list[dict]]:
    """The finest interval that has data (the minute view shows requests first; the coarser
    ones are compacted from it), with its records; `minute` and none when there are none."""
    for interval in INTERVALS:
        records = _telemetry_records(client_id, proxy_id, interval)
        if records:
            return interval, records
    return INTERVALS[0], []


@bp.get("/c/<client_id>/proxies/<proxy_id>/telemetry")
@signed_in
def telemetry(client_id: str, proxy_id: str):
    proxy = _proxy(client_id, proxy_id)
    interval = request.args.get("interval", "")
    if interval in INTERVALS:
        records = _telemetry_records(client_id, proxy_id, interval)
    else:
        interval, records = freshest_view(client_id, proxy_id)
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
        bar_chart("Countries", [COUNTRY_WORDS.get(c, c) for c, _ in countries],
                  [n for _, n in countries]),
    ]  # fmt: skip
    tools = _summed_members(records, "toolCountMap")
    if tools:  # an MCP proxy's tools/call calls by tool
        charts.append(bar_chart("MCP tool calls", [t for t, _ in tools], [n for _, n in tools]))
    return render_template(
        "web/telemetry.html",
        proxy=proxy,
        interval=interval,
        intervals=INTERVALS,
        charts=charts,
        records=records,
        total=sum(r.get("countMap", {}).get("proxy", 0) for r in records),
        lag_s=current_app.config["PORTCULLIS_SETTINGS"].telemetry_compact_seconds,
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
        points=points, point_s=POINT_SECONDS,
    )  # fmt: skip
