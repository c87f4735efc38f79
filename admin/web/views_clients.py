"""Your clients, a client's overview, and its members."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get
from admin.web.forms import ClientForm, MemberForm, RoleForm
from admin.web.forms_limits import ClientLimitsForm
from admin.web.session import can, load_client, require, signed_in


@bp.route("/", methods=["GET", "POST"])
@signed_in
def home():
    form = ClientForm()
    if form.submit_ok():
        answer = call("POST", "/clients", {"clientName": form.name.data})
        if answer.ok:
            client = answer.item("clients")
            flash(f"Client {client['clientName']} created. You are its owner.")
            return redirect(url_for("web.client", client_id=client["clientId"]))
        form.show_errors(answer.field_errors, answer.message)
    g.clients = get("/clients").items("clients")
    return render_template("web/home.html", form=form, clients=g.clients)


@bp.get("/c/<client_id>/")
@signed_in
def client(client_id: str):
    load_client(client_id)
    base = f"/clients/{client_id}"
    kinds = [c["credentialType"] for c in get(f"{base}/credentials").items("credentials")]
    counts = {  # singular: the page pluralises
        "proxy credential": kinds.count("proxy"),
        "target credential": kinds.count("target"),
        "target": len(get(f"{base}/targets").items("targets")),
        "proxy": len(get(f"{base}/proxies").items("proxies")),
    }
    return render_template("web/client.html", counts=counts)


@bp.route("/c/<client_id>/limits", methods=["GET", "POST"])
@signed_in
def client_limits(client_id: str):
    """The client's default request limits: new proxies start with them (admins change them,
    within the platform maxima)."""
    client = load_client(client_id)
    limits = (client.get("configuration") or {}).get("limits") or {}
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    maxima = {"minute": settings.max_requests_per_minute, "day": settings.max_requests_per_day}
    form = ClientLimitsForm(
        per_minute=limits.get("requestsPerMinute"), per_day=limits.get("requestsPerDay")
    )
    if form.submit_ok():
        require("admin")
        body = {"requestsPerMinute": form.per_minute.data, "requestsPerDay": form.per_day.data}
        answer = call(
            "PUT", f"/clients/{client_id}/configuration", {"configuration": {"limits": body}}
        )
        if answer.ok:
            flash("Default limits saved: new proxies start with them.")
            return redirect(url_for("web.client_limits", client_id=client_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template("web/client_limits.html", form=form, limits=limits, maxima=maxima)


@bp.route("/c/<client_id>/members", methods=["GET", "POST"])
@signed_in
def members(client_id: str):
    load_client(client_id)
    form = MemberForm()
    if can("owner") and form.submit_ok():
        answer = call(
            "POST",
            f"/clients/{client_id}/members",
            {"email": form.email.data, "roles": [form.role.data]},
        )
        if answer.ok:
            flash(answer.message)  # the same whether or not the email has an account
            return redirect(url_for("web.members", client_id=client_id))
        form.show_errors(answer.field_errors, answer.message)
    people = get(f"/clients/{client_id}/members").items("members")
    return render_template("web/members.html", form=form, people=people)


@bp.route("/c/<client_id>/members/<user_id>", methods=["GET", "POST"])
@signed_in
def member(client_id: str, user_id: str):
    load_client(client_id)
    require("owner")
    person = next(
        (
            m
            for m in get(f"/clients/{client_id}/members").items("members")
            if m["userId"] == user_id
        ),
        None,
    )
    if person is None:
        abort(404)
    form = RoleForm(role=person["roles"][0] if person["roles"] else "user")
    if form.submit_ok():
        answer = call("PUT", f"/clients/{client_id}/members/{user_id}", {"roles": [form.role.data]})
        if answer.ok:
            flash(f"{person['email']} is now {form.role.data}.")
            return redirect(url_for("web.members", client_id=client_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template("web/member.html", form=form, person=person)


@bp.route("/c/<client_id>/members/<user_id>/remove", methods=["GET", "POST"])
@signed_in
def remove_member(client_id: str, user_id: str):
    load_client(client_id)
    require("owner")
    return confirm_then_delete(
        f"/clients/{client_id}/members/{user_id}",
        back=url_for("web.members", client_id=client_id),
        question="Remove this member?",
        consequence="They lose access to this client at once.",
        action="Remove member",
        done="Member removed.",
    )
