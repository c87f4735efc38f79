"""A proxy's request limits and price, and its meters with a usage bar per window."""

from __future__ import annotations

import json

from flask import current_app, flash, redirect, render_template, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get, get_one
from admin.web.forms import name_list
from admin.web.forms_meters import LimitsForm, MeterForm, PriceForm
from admin.web.session import load_client, require, signed_in
from models.json_limits import loads
from models.windows import WINDOWS


def _proxy(client_id: str, proxy_id: str) -> dict:
    load_client(client_id)
    return get_one(f"/clients/{client_id}/proxies/{proxy_id}", "proxies")


def _maxima() -> dict[str, int]:
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    return {"minute": settings.max_requests_per_minute, "day": settings.max_requests_per_day}


@bp.route("/c/<client_id>/proxies/<proxy_id>/limits", methods=["GET", "POST"])
@signed_in
def proxy_limits(client_id: str, proxy_id: str):
    """The proxy's requests per minute and per day, and its price."""
    proxy = _proxy(client_id, proxy_id)
    base = f"/clients/{client_id}/proxies/{proxy_id}"
    price = get(f"{base}/price").item("prices")
    limits_form = LimitsForm(
        prefix="lim",
        per_minute=proxy["proxyMaxRequestsPerMinute"],
        per_day=proxy["proxyMaxRequestsPerDay"],
    )
    price_form = PriceForm(
        prefix="price",
        per_request=price["perRequest"],
        per_units=price["perMeterUnits"],
        unit_size=price["meterUnitSize"],
    )
    here = url_for("web.proxy_limits", client_id=client_id, proxy_id=proxy_id)
    if limits_form.submit_ok():
        require("admin")
        body = {
            "proxyMaxRequestsPerMinute": limits_form.per_minute.data,
            "proxyMaxRequestsPerDay": limits_form.per_day.data,
        }
        answer = call("PUT", base, body)
        if answer.ok:
            flash("Limits saved.")
            return redirect(here)
        limits_form.show_errors(answer.field_errors, answer.message)
    elif price_form.submit_ok():
        require("admin")
        body = {
            "perRequest": price_form.per_request.data,
            "perMeterUnits": price_form.per_units.data,
            "meterUnitSize": price_form.unit_size.data or 1,
        }
        answer = call("PUT", f"{base}/price", body)
        if answer.ok:
            flash("Price saved.")
            return redirect(here)
        price_form.show_errors(answer.field_errors, answer.message)
    return render_template(
        "web/proxy_limits.html",
        proxy=proxy,
        price=price,
        maxima=_maxima(),
        limits_form=limits_form,
        price_form=price_form,
    )


@bp.get("/c/<client_id>/proxies/<proxy_id>/meters")
@signed_in
def meters(client_id: str, proxy_id: str):
    """Each meter with its use, limit and reset per window."""
    proxy = _proxy(client_id, proxy_id)
    base = f"/clients/{client_id}/proxies/{proxy_id}/meters"
    items = get(base).items("meters")
    usage = {u["meterId"]: u for u in get(f"{base}/usage").items("usage")}
    return render_template("web/meters.html", proxy=proxy, meters=items, usage=usage)


# Predicates the form has no fields for: an edit sends them back as they were stored.
KEPT_PREDICATES = ("headerChecks", "queryChecks")


def kept_predicates(meter: dict | None) -> dict:
    """A stored meter's predicates that the form does not show: header and query checks, and
    the body checks after the first (the form edits only the first)."""
    predicates = (meter or {}).get("predicates") or {}
    kept = {key: predicates[key] for key in KEPT_PREDICATES if predicates.get(key)}
    if len(predicates.get("bodyChecks") or []) > 1:
        kept["bodyChecks"] = predicates["bodyChecks"][1:]
    return kept


def meter_body(form: MeterForm, meter: dict | None = None) -> dict:
    """The API's meter from the form: what was typed, unchecked (the API checks it), with
    the stored predicates the form does not show (`kept_predicates`)."""
    kept = kept_predicates(meter)
    predicates: dict = {key: value for key, value in kept.items() if key != "bodyChecks"}
    methods = [m.strip().upper() for m in (form.methods.data or "").split(",") if m.strip()]
    if methods:
        predicates["methods"] = methods
    if form.path_pattern.data:
        predicates |= {
            "pathPattern": form.path_pattern.data,
            "pathPresence": form.path_presence.data,
        }
    body_checks = kept.get("bodyChecks", [])
    if form.body_path.data:
        body_checks = [{"path": form.body_path.data, "equals": _json_value(form)}, *body_checks]
    if body_checks:
        predicates["bodyChecks"] = body_checks
    if form.regex_flags.data:
        predicates["regexFlags"] = form.regex_flags.data
    for key, field in (("mcpMethods", form.mcp_methods), ("mcpTools", form.mcp_tools)):
        if name_list(field.data):
            predicates[key] = name_list(field.data)
    if predicates.get("mcpTools"):
        predicates["mcpToolsPresence"] = form.mcp_tools_presence.data
    extraction = None
    if form.extraction_location.data:
        extraction = {"location": form.extraction_location.data}
        if form.extraction_path.data:
            extraction["path"] = form.extraction_path.data
        if form.extraction_name.data:
            extraction["name"] = form.extraction_name.data
        if form.extraction_event.data:
            extraction["event"] = form.extraction_event.data
    return {
        "meterName": form.name.data,
        "meterType": form.meter_type.data,
        "meterMode": form.mode.data,
        "meterActive": form.active.data,
        "predicates": predicates,
        "extraction": extraction,
        "limits": {w: getattr(form, f"limit_{w}").data for w in WINDOWS},
        "limitMode": form.limit_mode.data,
    }


def _json_value(form: MeterForm):
    text = form.body_equals.data or ""
    try:
        return loads(text)
    except ValueError:
        return text  # `big` means the string "big"


def _form_from(meter: dict) -> MeterForm:
    predicates = meter.get("predicates") or {}
    extraction = meter.get("extraction") or {}
    body_check = (predicates.get("bodyChecks") or [{}])[0]
    return MeterForm(
        name=meter["meterName"],
        meter_type=meter["meterType"],
        mode=meter["meterMode"],
        active=meter["meterActive"],
        methods=", ".join(predicates.get("methods") or []),
        path_pattern=predicates.get("pathPattern") or "",
        path_presence=predicates.get("pathPresence") or "present",
        body_path=body_check.get("path", ""),
        body_equals=_equals_text(body_check),
        regex_flags=predicates.get("regexFlags") or "",
        mcp_methods=", ".join(predicates.get("mcpMethods") or []),
        mcp_tools=", ".join(predicates.get("mcpTools") or []),
        mcp_tools_presence=predicates.get("mcpToolsPresence") or "present",
        extraction_location=extraction.get("location", ""),
        extraction_path=extraction.get("path", ""),
        extraction_name=extraction.get("name", ""),
        extraction_event=extraction.get("event", ""),
        **{f"limit_{w}": (meter.get("limits") or {}).get(w) for w in WINDOWS},
        limit_mode=meter.get("limitMode") or "reached",
    )


def _equals_text(body_check: dict) -> str:
    """`equals` as typed: a plain string as itself, anything else (or a string that reads
    as another JSON value, like "5") as JSON."""
    if "equals" not in body_check:
        return ""
    value = body_check["equals"]
    if isinstance(value, str):
        try:
            loads(value)
        except ValueError:
            return value
    return json.dumps(value)


@bp.route("/c/<client_id>/proxies/<proxy_id>/meters/new", methods=["GET", "POST"])
@signed_in
def new_meter(client_id: str, proxy_id: str):
    proxy = _proxy(client_id, proxy_id)
    require("admin")
    form = MeterForm()
    if form.submit_ok():
        answer = call("POST", f"/clients/{client_id}/proxies/{proxy_id}/meters", meter_body(form))
        if answer.ok:
            flash(f"Meter {answer.item('meters')['meterName']} created.")
            return redirect(url_for("web.meters", client_id=client_id, proxy_id=proxy_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template("web/meter_form.html", proxy=proxy, form=form, meter=None, kept={})


@bp.route("/c/<client_id>/proxies/<proxy_id>/meters/<meter_id>", methods=["GET", "POST"])
@signed_in
def edit_meter(client_id: str, proxy_id: str, meter_id: str):
    proxy = _proxy(client_id, proxy_id)
    require("admin")
    path = f"/clients/{client_id}/proxies/{proxy_id}/meters/{meter_id}"
    meter = get_one(path, "meters")
    form = _form_from(meter)  # a sent form's values take the place of these
    if form.submit_ok():
        answer = call("PUT", path, meter_body(form, meter))
        if answer.ok:
            flash(f"Meter {answer.item('meters')['meterName']} saved.")
            return redirect(url_for("web.meters", client_id=client_id, proxy_id=proxy_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template(
        "web/meter_form.html", proxy=proxy, form=form, meter=meter, kept=kept_predicates(meter)
    )


@bp.route("/c/<client_id>/proxies/<proxy_id>/meters/<meter_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_meter(client_id: str, proxy_id: str, meter_id: str):
    _proxy(client_id, proxy_id)
    require("admin")
    path = f"/clients/{client_id}/proxies/{proxy_id}/meters/{meter_id}"
    meter = get_one(path, "meters")
    return confirm_then_delete(
        path,
        back=url_for("web.meters", client_id=client_id, proxy_id=proxy_id),
        question=f"Delete the meter {meter['meterName']}?",
        consequence="Its counts are gone and its limits no longer apply.",
        action="Delete meter",
        done=f"Meter {meter['meterName']} deleted.",
    )
