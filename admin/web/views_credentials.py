"""Credentials: the list (with those pending authorization on request), a credential's page
with its OAuth2 connection, the new-credential form, Connect, delete."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, url_for

from admin.web import bp
from admin.web.core_api import call, get, get_one
from admin.web.credential_secret import LineError, credential_secret
from admin.web.forms import ConfirmForm
from admin.web.forms_credentials import ALLOWED_BY_USE, AUTH_TYPES, CredentialForm
from admin.web.session import load_client, require, signed_in
from admin.web.views_config import _created, _delete

CONNECTION_STATES = {
    "pending": "pending authorization",
    "connected": "connected",
    "needs_reconnect": "needs reconnecting",
}


def connects(credential: dict) -> bool:
    """Whether the credential is connected by a person (Connect / Reconnect)."""
    settings = credential.get("credentialSettings") or {}
    return (
        credential["credentialAuthType"] == "oauth2"
        and settings.get("grantType") == "authorization_code"
    )


def connection_state(credential: dict) -> str | None:
    """`pending`, `connected` or `needs_reconnect` for an OAuth2 credential with a grant."""
    connection = credential.get("credentialConnection")
    if connection:
        return connection.get("status")
    if connects(credential):
        return "pending" if credential.get("credentialTemporary") else "connected"
    return None


@bp.get("/c/<client_id>/credentials")
@signed_in
def credentials(client_id: str):
    load_client(client_id)
    pending = request.args.get("includeTemporary") == "true"
    answer = get(f"/clients/{client_id}/credentials", includeTemporary="true" if pending else None)
    return render_template(
        "web/credentials.html",
        credentials=answer.items("credentials"),
        pending=pending,
        state=connection_state,
        states=CONNECTION_STATES,
        auth_types=dict(AUTH_TYPES),
    )


@bp.get("/c/<client_id>/credentials/<credential_id>")
@signed_in
def credential(client_id: str, credential_id: str):
    """A credential's settings and, for OAuth2 authorization_code, its connection."""
    load_client(client_id)
    record = get_one(f"/clients/{client_id}/credentials/{credential_id}", "credentials")
    return render_template(
        "web/credential.html",
        credential=record,
        connects=connects(record),
        state=connection_state(record),
        states=CONNECTION_STATES,
        connection=record.get("credentialConnection") or {},
        auth_types=dict(AUTH_TYPES),
    )


@bp.post("/c/<client_id>/credentials/<credential_id>/connect")
@signed_in
def connect_credential(client_id: str, credential_id: str):
    """Start a Connect: the Core API makes the authorization (state, PKCE) and its URL; the
    browser goes there, and comes back to the admin's callback."""
    load_client(client_id)
    require("admin")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    answer = call("POST", f"/clients/{client_id}/credentials/{credential_id}/authorize")
    url = answer.body.get("authorizeUrl") if answer.ok else None
    if not url or urlsplit(url).scheme not in ("http", "https"):
        flash(answer.message or "The authorization could not be started.", "warning")
        return redirect(url_for("web.credential", client_id=client_id, credential_id=credential_id))
    return redirect(url, code=303)


@bp.route("/c/<client_id>/credentials/new", methods=["GET", "POST"])
@signed_in
def new_credential(client_id: str):
    load_client(client_id)
    require("admin")
    form = CredentialForm()
    if form.submit_ok():
        body = {
            "credentialName": form.name.data,
            "credentialType": form.credential_type.data,
            "credentialAuthType": form.auth_type.data,
            "credentialRegion": form.region.data,
            "credentialDefaultRuleEffect": form.default_effect.data,
        }
        try:
            secret = credential_secret(form)
        except LineError as exc:
            getattr(form, exc.field).errors = [str(exc)]
            return render_template("web/credential_new.html", form=form, allowed=ALLOWED_BY_USE)
        if secret is not None:
            body["credentialSecret"] = secret
        answer = call("POST", f"/clients/{client_id}/credentials", body)
        if _created(answer, "credentials", form):
            made = answer.item("credentials")
            if connects(made):
                flash("Press Connect to authorize it at the provider.")
                return redirect(
                    url_for(
                        "web.credential", client_id=client_id, credential_id=made["credentialId"]
                    )
                )
            return redirect(url_for("web.credentials", client_id=client_id))
    return render_template("web/credential_new.html", form=form, allowed=ALLOWED_BY_USE)


@bp.route("/c/<client_id>/credentials/<record_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_credential(client_id: str, record_id: str):
    return _delete(client_id, "credentials", record_id)
