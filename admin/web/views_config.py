"""Targets and proxies: list, create, change, delete; test a target. The shared create and
delete steps (credentials use them too, see views_credentials.py)."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for

from admin.extensions import db
from admin.notify.producers import record_failed_test
from admin.web import bp
from admin.web.core_api import Answer, call, get, get_one
from admin.web.egress_form import egress_body, egress_values, hide_credentials
from admin.web.egress_probe import probe_egress
from admin.web.forms import ConfirmForm, ProxyForm, TargetForm
from admin.web.probe import probe
from admin.web.session import load_client, require, signed_in
from models import Credential, Target

# What each kind of record is called in the API and on the pages.
KINDS = {
    "credentials": ("credential", "credentials", "Credential"),
    "targets": ("target", "targets", "Target"),
    "proxies": ("proxy", "proxies", "Proxy"),
}


def _created(answer: Answer, kind: str, form) -> bool:
    if answer.ok:
        flash(f"{KINDS[kind][2]} {answer.item(kind)[f'{KINDS[kind][0]}Name']} created.")
        return True
    form.show_errors(answer.field_errors, answer.message)
    return False


def _delete(client_id: str, kind: str, record_id: str):
    """The confirmation page, then the DELETE; the API refuses what is still in use."""
    load_client(client_id)
    require("admin")
    singular, _, title = KINDS[kind]
    back = url_for(f"web.{kind}", client_id=client_id)
    if ConfirmForm().validate_on_submit():
        answer = call("DELETE", f"/clients/{client_id}/{kind}/{record_id}")
        flash(
            f"{title} deleted." if answer.ok else answer.message, "info" if answer.ok else "warning"
        )
        return redirect(back)
    return render_template(
        "web/confirm.html",
        question=f"Delete this {singular}?",
        consequence="This cannot be undone.",
        action=f"Delete {singular}",
        back=back,
    )


@bp.get("/c/<client_id>/targets")
@signed_in
def targets(client_id: str):
    load_client(client_id)
    items = get(f"/clients/{client_id}/targets").items("targets")
    return render_template("web/targets.html", targets=items)


def _target_body(form: TargetForm) -> dict:
    return {
        "targetName": form.name.data,
        "targetBaseURL": form.base_url.data,
        "targetRegion": form.region.data,
        "targetTestPath": form.test_path.data or None,
        "targetDefaultRuleEffect": form.default_effect.data,
        "targetActive": form.active.data,
        "targetEgress": egress_body(form),
    }


def _target_form(record: dict, from_request: bool = True) -> TargetForm:
    """The target's form: what was posted over the record, or (`from_request` false) the record."""
    values = {
        "name": record["targetName"],
        "base_url": record["targetBaseURL"],
        "region": record["targetRegion"],
        "test_path": record.get("targetTestPath") or "",
        "default_effect": record["targetDefaultRuleEffect"],
        "active": record["targetActive"],
        **egress_values(record.get("targetEgress")),
    }
    return TargetForm(**values) if from_request else TargetForm(formdata=None, **values)


@bp.route("/c/<client_id>/targets/new", methods=["GET", "POST"])
@signed_in
def new_target(client_id: str):
    load_client(client_id)
    require("admin")
    form = TargetForm()
    if form.submit_ok():
        body = {k: v for k, v in _target_body(form).items() if v is not None}
        if _created(call("POST", f"/clients/{client_id}/targets", body), "targets", form):
            return redirect(url_for("web.targets", client_id=client_id))
    return render_template(
        "web/target_edit.html", form=hide_credentials(form), target=None, result=None
    )


@bp.route("/c/<client_id>/targets/<target_id>", methods=["GET", "POST"])
@signed_in
def target(client_id: str, target_id: str):
    load_client(client_id)
    record = get_one(f"/clients/{client_id}/targets/{target_id}", "targets")
    form = _target_form(record)
    if form.submit_ok():
        require("admin")
        body = _target_body(form)
        body.pop("targetRegion")  # fixed at creation
        changed = call("PUT", f"/clients/{client_id}/targets/{target_id}", body)
        if changed.ok:
            flash("Target saved.")
            return redirect(url_for("web.target", client_id=client_id, target_id=target_id))
        form.show_errors(changed.field_errors, changed.message)
    return render_template(
        "web/target_edit.html", form=hide_credentials(form), target=record, result=None
    )


@bp.post("/c/<client_id>/targets/<target_id>/test")
@signed_in
def test_target(client_id: str, target_id: str):
    """Send the target's test path through the gateway, via a proxy that serves it."""
    load_client(client_id)
    require("admin")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    record = get(f"/clients/{client_id}/targets/{target_id}").item("targets")
    proxies = [
        p for p in get(f"/clients/{client_id}/proxies").items("proxies")
        if p["proxyTargetId"] == target_id and p["proxyActive"]
    ]  # fmt: skip
    if not proxies:
        result = None
        flash("No active proxy uses this target yet: create one to test through the gateway.",
              "warning")  # fmt: skip
    else:
        proxy = proxies[0]
        credential = db.session.get(Credential, proxy["proxyProxyCredentialId"])
        settings = current_app.config["PORTCULLIS_SETTINGS"]
        result = probe(
            settings.gateway_url,
            proxy["proxyId"],
            record.get("targetTestPath") or "/",
            credential,
            current_app.config["PORTCULLIS_KEY_RING"],
        )
        record_failed_test(
            db.session, client_id, record, proxy["proxyId"], result.status, result.error
        )
        result = {"proxy": proxy, **result.__dict__}
    form = _target_form(record, from_request=False)
    return render_template("web/target_edit.html", form=form, target=record, result=result)


@bp.post("/c/<client_id>/targets/<target_id>/test-egress")
@signed_in
def test_target_egress(client_id: str, target_id: str):
    """Fetch the target's test URL through its egress (fixed proxy or pool), from the admin."""
    load_client(client_id)
    require("admin")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    record = get_one(f"/clients/{client_id}/targets/{target_id}", "targets")
    target = db.session.get(Target, target_id)
    if target is None or target.client_id != client_id:
        abort(404)
    egress_result = probe_egress(
        db.session,
        current_app.config["PORTCULLIS_SETTINGS"],
        current_app.config["PORTCULLIS_KEY_RING"],
        target,
    )
    form = _target_form(record, from_request=False)
    return render_template(
        "web/target_edit.html", form=form, target=record, result=None, egress_result=egress_result
    )


@bp.route("/c/<client_id>/targets/<record_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_target(client_id: str, record_id: str):
    return _delete(client_id, "targets", record_id)


@bp.get("/c/<client_id>/proxies")
@signed_in
def proxies(client_id: str):
    load_client(client_id)
    base = f"/clients/{client_id}"
    return render_template(
        "web/proxies.html",
        proxies=get(f"{base}/proxies").items("proxies"),
        ready=_proxy_parts(client_id),
    )


def _proxy_parts(client_id: str) -> dict[str, list[dict]]:
    """What a proxy binds: proxy credentials, targets, target credentials."""
    base = f"/clients/{client_id}"
    creds = get(f"{base}/credentials").items("credentials")
    return {
        "proxy": [c for c in creds if c["credentialType"] == "proxy"],
        "target": [c for c in creds if c["credentialType"] == "target"],
        "targets": get(f"{base}/targets").items("targets"),
    }


def _proxy_form(parts: dict, **values) -> ProxyForm:
    form = ProxyForm(**values)
    form.proxy_credential.choices = [
        (c["credentialId"], c["credentialName"]) for c in parts["proxy"]
    ]
    form.target_credential.choices = [
        (c["credentialId"], c["credentialName"]) for c in parts["target"]
    ]
    form.target.choices = [(t["targetId"], t["targetName"]) for t in parts["targets"]]
    return form


def _proxy_body(form: ProxyForm) -> dict:
    return {
        "proxyName": form.name.data,
        "proxyAlias": form.alias.data or None,
        "proxyRegion": form.region.data,
        "proxyProxyCredentialId": form.proxy_credential.data,
        "proxyTargetId": form.target.data,
        "proxyTargetCredentialId": form.target_credential.data,
        "proxyDefaultRuleEffect": form.default_effect.data,
        "proxyActive": form.active.data,
        "proxyMaxResponseBytes": _whole_number(form.max_response_bytes.data),
        "proxyMcp": form.mcp.data,
    }


def _whole_number(text: str | None) -> int | str | None:
    """Empty: None (the default); digits: the number; anything else as typed, for the API
    to refuse next to the field."""
    text = (text or "").strip()
    if not text:
        return None
    return int(text) if text.isdigit() and text.isascii() else text


@bp.route("/c/<client_id>/proxies/new", methods=["GET", "POST"])
@signed_in
def new_proxy(client_id: str):
    load_client(client_id)
    require("admin")
    parts = _proxy_parts(client_id)
    form = _proxy_form(parts)
    if form.submit_ok():
        body = {k: v for k, v in _proxy_body(form).items() if v is not None}
        answer = call("POST", f"/clients/{client_id}/proxies", body)
        if _created(answer, "proxies", form):  # its page: the URL to call and a curl example
            made = answer.item("proxies")["proxyId"]
            return redirect(url_for("web.proxy", client_id=client_id, proxy_id=made))
    return render_template("web/proxy_new.html", form=form, ready=parts)


@bp.route("/c/<client_id>/proxies/<proxy_id>", methods=["GET", "POST"])
@signed_in
def proxy(client_id: str, proxy_id: str):
    load_client(client_id)
    record = get_one(f"/clients/{client_id}/proxies/{proxy_id}", "proxies")
    parts = _proxy_parts(client_id)
    form = _proxy_form(
        parts,
        name=record["proxyName"],
        alias=record.get("proxyAlias") or "",
        region=record["proxyRegion"],
        proxy_credential=record["proxyProxyCredentialId"],
        target=record["proxyTargetId"],
        target_credential=record["proxyTargetCredentialId"],
        default_effect=record["proxyDefaultRuleEffect"],
        active=record["proxyActive"],
        max_response_bytes=(
            "" if record.get("proxyMaxResponseBytes") is None else record["proxyMaxResponseBytes"]
        ),
        mcp=record.get("proxyMcp", False),
    )
    if form.submit_ok():
        require("admin")
        changed = call("PUT", f"/clients/{client_id}/proxies/{proxy_id}", _proxy_body(form))
        if changed.ok:
            flash("Proxy saved.")
            return redirect(url_for("web.proxy", client_id=client_id, proxy_id=proxy_id))
        form.show_errors(changed.field_errors, changed.message)
    caller = next(
        (c for c in parts["proxy"] if c["credentialId"] == record["proxyProxyCredentialId"]), None
    )
    gateway = current_app.config["PORTCULLIS_SETTINGS"].gateway_url
    url = f"{gateway}/api/{record.get('proxyAlias') or record['proxyId']}"
    return render_template(
        "web/proxy.html", form=form, proxy=record, url=url, curl=curl_example(url, caller)
    )


def curl_example(url: str, caller: dict | None) -> str:
    """A curl call for the proxy's credential type, with a placeholder for the secret."""
    if caller is None:
        return f'curl -i "{url}/"'
    settings = caller.get("credentialSettings") or {}
    match caller["credentialAuthType"]:
        case "apiKey" if settings.get("in") == "query":
            return f'curl -i "{url}/?{settings["name"]}=$PROXY_KEY"'
        case "apiKey":
            return f'curl -i "{url}/" -H "{settings.get("name", "Authorization")}: $PROXY_KEY"'
        case "bearer" | "jwt" | "jwtVerify":
            header = settings.get("header", "Authorization")
            prefix = settings.get("prefix", "Bearer")
            token = "$PROXY_TOKEN" if caller["credentialAuthType"] == "bearer" else "$JWT"
            return f'curl -i "{url}/" -H "{header}: {prefix + " " if prefix else ""}{token}"'
        case "basicAuth":
            return f'curl -i "{url}/" -u "$USERNAME:$PASSWORD"'
    return f'curl -i "{url}/"'


@bp.route("/c/<client_id>/proxies/<record_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_proxy(client_id: str, record_id: str):
    return _delete(client_id, "proxies", record_id)
