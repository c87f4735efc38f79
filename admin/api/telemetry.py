"""Telemetry (seed 000) per proxy and per client, and a proxy's metrics history (seed 004)."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify, request
from sqlalchemy import func, select

from admin.api.common import api_blueprint
from admin.api.meters import proxy_meter_usage
from admin.api.proxies import proxy_for
from admin.auth import client_for
from admin.errors import flat_errors, invalid
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.telemetry import (
    MetricPointSchema,
    MetricsQuerySchema,
    TelemetryQuerySchema,
    TelemetryRecordSchema,
)
from admin.telemetry_views import (
    CUMULATIVE,
    MAX_POINTS,
    StoredPoint,
    metric_points,
    minimum_step,
    telemetry_records,
)
from models import MetricPoint, MetricPointLatency, MetricTotal, TelemetryCounter
from models.aggregates import integer_sum
from models.periods import POINT_SECONDS, period_start

bp = api_blueprint("telemetry")
STEP_HEADER = "Portcullis-Metrics-Step"
Counter = TelemetryCounter  # short, for the queries below


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _telemetry(owner_column, owner_id: str, owner_fields: dict, **extra):
    """The telemetry answer for all rows whose `owner_column` is `owner_id`."""
    args = TelemetryQuerySchema().load(request.args.to_dict())
    resolution = args["interval"]
    conditions = [owner_column == owner_id, Counter.resolution == resolution]
    if "startDate" in args:
        conditions.append(Counter.period >= period_start(_epoch(args["startDate"]), resolution))
    if "endDate" in args:
        conditions.append(Counter.period <= _epoch(args["endDate"]))
    latest = (
        select(Counter.period)
        .where(*conditions)
        .distinct()
        .order_by(Counter.period.desc())
        .limit(args["limit"])
    )
    periods = list(db.session.scalars(latest))
    rows = db.session.execute(
        select(
            Counter.period,
            Counter.leg,
            Counter.dimension,
            Counter.member,
            integer_sum(Counter.count),
            func.sum(Counter.total_ms),
        )
        .where(*conditions, Counter.period.in_(periods))
        .group_by(Counter.period, Counter.leg, Counter.dimension, Counter.member)
    ).all()
    records = telemetry_records(rows, resolution, owner_fields)
    return envelope("telemetry", records, interval=resolution, **extra)


@bp.get("/clients/<client_id>/proxies/<proxy_id>/telemetry")
@doc(
    "A proxy's telemetry per minute, hour, day or month, for the proxy and target legs",
    "telemetry",
    envelope="telemetry",
    schema=TelemetryRecordSchema,
    query=TelemetryQuerySchema().fields,
    errors=(400, 401, 404),
)
def proxy_telemetry(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    # The proxy's usage meters ride along: their current use per window (admin/api/meters.py).
    owner = {"pKey": proxy.id, "proxyId": proxy.id}
    return _telemetry(Counter.proxy_id, proxy.id, owner, meters=proxy_meter_usage(proxy.id))


@bp.get("/clients/<client_id>/telemetry")
@doc(
    "A client's telemetry: the same as a proxy's, summed over all of the client's proxies",
    "telemetry",
    envelope="telemetry",
    schema=TelemetryRecordSchema,
    query=TelemetryQuerySchema().fields,
    errors=(400, 401, 404),
)
def client_telemetry(client_id: str):
    client = client_for(client_id)
    return _telemetry(Counter.client_id, client.id, {"pKey": client.id, "clientId": client.id})


@bp.get("/clients/<client_id>/proxies/<proxy_id>/metrics")
@doc(
    "A proxy's metrics history: one point per 10 s window, merged into steps past 5000 points",
    "telemetry",
    schema=MetricPointSchema,
    returns_list=True,
    query=MetricsQuerySchema().fields,
    errors=(400, 401, 404),
    flat_errors=True,
)
@flat_errors
def proxy_metrics(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    args = MetricsQuerySchema().load(request.args.to_dict())
    start, end = _epoch(args["from_"]), _epoch(args["to"])
    points = _stored_points(proxy.id, start, end)
    step = args.get("step")
    if step is not None and (end - start) // step + 1 > MAX_POINTS:
        needed = minimum_step(start, end)
        raise invalid("step", f"{MAX_POINTS} points at most: use a step of {needed} s or more.")
    if step is None and len(points) > MAX_POINTS:
        step = minimum_step(start, end)
    body = metric_points(points, _totals_after(proxy.id, end), start, step)
    response = jsonify(body)
    response.headers[STEP_HEADER] = str(step or POINT_SECONDS)
    return response


def _stored_points(proxy_id: str, start: int, end: int) -> list[StoredPoint]:
    in_range = (MetricPoint.proxy_id == proxy_id, MetricPoint.captured_at.between(start, end))
    histograms: dict[int, dict[int, int]] = {}
    latency = select(MetricPointLatency).where(
        MetricPointLatency.proxy_id == proxy_id,
        MetricPointLatency.captured_at.between(start, end),
    )
    for row in db.session.scalars(latency):
        histograms.setdefault(row.captured_at, {})[row.bucket] = row.count
    rows = db.session.scalars(
        select(MetricPoint).where(*in_range).order_by(MetricPoint.captured_at)
    )
    return [
        StoredPoint(
            captured_at=row.captured_at,
            requests=row.requests,
            errors=row.errors,
            bytes=row.bytes,
            connections=row.connections,
            open_connections=row.open_connections,
            latency=histograms.get(row.captured_at, {}),
        )
        for row in rows
    ]


def _totals_after(proxy_id: str, end: int) -> dict[str, int]:
    """The proxy's cumulative totals as they stood at `end`: now, less what came later."""
    totals = db.session.get(MetricTotal, proxy_id)
    later = db.session.execute(
        select(
            *(func.coalesce(integer_sum(getattr(MetricPoint, name)), 0) for name in CUMULATIVE)
        ).where(MetricPoint.proxy_id == proxy_id, MetricPoint.captured_at > end)
    ).one()
    return {
        name: (getattr(totals, name) if totals else 0) - after
        for name, after in zip(CUMULATIVE, later, strict=True)
    }
