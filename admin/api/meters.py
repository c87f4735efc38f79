"""Usage meters of a proxy: list, create, get, update, delete, and each meter's usage.

The usage read-out comes from the store: the data plane writes every meter's
window counts there in batches (about every 0.2 s while requests flow), so it
lags the counters by that much. With several data-plane processes it is exact
only when they share Redis (otherwise each writes its own count).
"""

from __future__ import annotations

import time

from marshmallow import fields
from sqlalchemy import select

from admin.api.common import api_blueprint, assign, load_body
from admin.api.proxies import proxy_for
from admin.auth import current_user
from admin.errors import not_found
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.common import ApiSchema
from admin.schemas.meters import MeterSchema, check_meter
from models import Meter, MeterUsage
from models.enums import Role
from models.meter_engine import REACHED
from models.windows import WINDOWS, window_bounds

bp = api_blueprint("meters")

BASE = "/clients/<client_id>/proxies/<proxy_id>/meters"
METER_DEFAULTS = {
    "active": True,
    "mode": "all",
    "predicates": {},
    "extraction": None,
    "limits": {},
    "limit_mode": REACHED,
}
FIELDS = ("name", "meter_type", *METER_DEFAULTS)


class WindowUsageSchema(ApiSchema):
    window = fields.String(metadata={"example": "day"})
    used = fields.Integer()
    limit = fields.Integer(allow_none=True)
    remaining = fields.Integer(allow_none=True)
    windowStart = fields.Integer(allow_none=True, metadata={"description": "epoch seconds"})
    resetsAt = fields.Integer(allow_none=True, metadata={"description": "epoch seconds"})


class MeterUsageSchema(ApiSchema):
    meterId = fields.String()
    meterName = fields.String()
    meterType = fields.String()
    windows = fields.List(fields.Nested(WindowUsageSchema))


def _meter(proxy, meter_id: str) -> Meter:
    meter = db.session.get(Meter, meter_id)
    if meter is None or meter.proxy_id != proxy.id:
        raise not_found("Meter")
    return meter


def _dump(meter: Meter) -> dict:
    return MeterSchema().dump(meter)


@doc("List a proxy's meters", "meters", envelope="meters", schema=MeterSchema, errors=(401, 404))
def list_meters(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    meters = db.session.scalars(
        select(Meter).where(Meter.proxy_id == proxy.id).order_by(Meter.created_at, Meter.id)
    )
    return envelope("meters", MeterSchema(many=True).dump(meters))


@doc(
    "Create a meter (admin)", "meters", body=MeterSchema, envelope="meters", schema=MeterSchema,
    status=201,
)  # fmt: skip
def create_meter(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id, Role.ADMIN)
    values = check_meter(METER_DEFAULTS | load_body(MeterSchema()))
    meter = Meter(
        client_id=client_id,
        proxy_id=proxy.id,
        created_by=current_user().id,
        region=proxy.region,
        **values,
    )
    db.session.add(meter)
    db.session.commit()
    return envelope("meters", [_dump(meter)], status=201)


@doc("Get a meter", "meters", envelope="meters", schema=MeterSchema, errors=(401, 404))
def get_meter(client_id: str, proxy_id: str, meter_id: str):
    meter = _meter(proxy_for(client_id, proxy_id), meter_id)
    return envelope("meters", [_dump(meter)])


@doc("Update a meter (admin)", "meters", body=MeterSchema, envelope="meters", schema=MeterSchema)
def update_meter(client_id: str, proxy_id: str, meter_id: str):
    meter = _meter(proxy_for(client_id, proxy_id, Role.ADMIN), meter_id)
    changes = load_body(MeterSchema(), partial=True)
    assign(meter, check_meter({key: getattr(meter, key) for key in FIELDS} | changes))
    db.session.commit()
    return envelope("meters", [_dump(meter)])


@doc("Delete a meter (admin)", "meters", errors=(401, 403, 404))
def delete_meter(client_id: str, proxy_id: str, meter_id: str):
    meter = _meter(proxy_for(client_id, proxy_id, Role.ADMIN), meter_id)
    db.session.delete(meter)
    db.session.commit()
    return message_only("Meter deleted successfully")


@doc(
    "A meter's use per window: current value, limit and reset (written by the data plane "
    "in batches, so a fraction of a second behind)",
    "meters", envelope="usage", schema=MeterUsageSchema, errors=(401, 404),
)  # fmt: skip
def meter_usage(client_id: str, proxy_id: str, meter_id: str):
    meter = _meter(proxy_for(client_id, proxy_id), meter_id)
    return envelope("usage", MeterUsageSchema(many=True).dump(usage_of([meter])))


@doc(
    "Every meter's use per window, in the order of the meter list (as each meter's usage)",
    "meters", envelope="usage", schema=MeterUsageSchema, errors=(401, 404),
)  # fmt: skip
def proxy_usage(client_id: str, proxy_id: str):
    return envelope("usage", proxy_meter_usage(proxy_for(client_id, proxy_id).id))


def proxy_meter_usage(proxy_id: str) -> list[dict]:
    """Every meter of a proxy with its current use per window (also in the proxy's telemetry)."""
    meters = db.session.scalars(
        select(Meter).where(Meter.proxy_id == proxy_id).order_by(Meter.created_at, Meter.id)
    ).all()
    return MeterUsageSchema(many=True).dump(usage_of(meters))


def usage_of(meters: list[Meter]) -> list[dict]:
    """Each meter's use in each current window, as the data plane last wrote it (one query)."""
    now = time.time()
    current = {window: window_bounds(window, now) for window in WINDOWS}
    used = {meter.id: dict.fromkeys(WINDOWS, 0) for meter in meters}
    rows = db.session.scalars(
        select(MeterUsage).where(MeterUsage.meter_id.in_(used), MeterUsage.window_end > now)
    )
    for row in rows:
        if row.window_start == current[row.window][0]:
            used[row.meter_id][row.window] = row.used
    return [_usage(meter, used[meter.id], current) for meter in meters]


def _usage(meter: Meter, used: dict[str, int], current: dict[str, tuple[int, int]]) -> dict:
    windows = []
    for window in WINDOWS:
        limit = (meter.limits or {}).get(window)
        windows.append(
            {
                "window": window,
                "used": used[window],
                "limit": limit,
                "remaining": None if limit is None else max(limit - used[window], 0),
                "windowStart": current[window][0],
                "resetsAt": current[window][1],
            }
        )
    return {
        "meterId": meter.id,
        "meterName": meter.name,
        "meterType": meter.meter_type,
        "windows": windows,
    }


bp.add_url_rule(BASE, view_func=list_meters, methods=["GET"])
bp.add_url_rule(BASE, view_func=create_meter, methods=["POST"])
bp.add_url_rule(f"{BASE}/usage", view_func=proxy_usage, methods=["GET"])
bp.add_url_rule(f"{BASE}/<meter_id>", view_func=get_meter, methods=["GET"])
bp.add_url_rule(f"{BASE}/<meter_id>", view_func=update_meter, methods=["PUT"])
bp.add_url_rule(f"{BASE}/<meter_id>", view_func=delete_meter, methods=["DELETE"])
bp.add_url_rule(f"{BASE}/<meter_id>/usage", view_func=meter_usage, methods=["GET"])
