"""`GET /ui/oauth/callback`: where an OAuth2 provider sends the person back after a Connect.

The callback is bound to the person who started the Connect: it needs a live
web session of that same user (someone else's browser, or a link sent to
someone else, is refused), who must still be an admin of the credential's
client. The authorization is claimed (single use) before the code is
exchanged, so a replayed or concurrent callback finds it used. A refusal of
any kind is a 400 page and stores nothing.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import update

from admin.extensions import db
from admin.oauth import ExchangeFailed, exchange_code, provider_error
from admin.web import bp
from admin.web.session import live_session
from models import Credential, CredentialGrant, Membership, OAuthAuthorization, utcnow
from models.credential_grant import state_hash
from models.crypto import SecretDecryptionError
from models.enums import Role

INVALID_LINK = "This authorization link is invalid or was already used."
MAX_STATE_CHARS = 512


def _refused(message: str, status: int = 400):
    return render_template("web/oauth_result.html", message=message), status


def _claim(key: str) -> OAuthAuthorization | None:
    """The authorization `key` names, marked used now, if it was unused and unexpired."""
    now = utcnow()
    claimed = db.session.execute(
        update(OAuthAuthorization)
        .where(
            OAuthAuthorization.state_hash == key,
            OAuthAuthorization.used_at.is_(None),
            OAuthAuthorization.expires_at > now,
        )
        .values(used_at=now)
    ).rowcount
    db.session.commit()
    return db.session.get(OAuthAuthorization, key) if claimed == 1 else None


def _is_admin(user_id: str, client_id: str) -> bool:
    membership = db.session.get(Membership, (client_id, user_id))
    return membership is not None and membership.has(Role.ADMIN)


def _store_connection(credential: Credential, refresh_token: str, access_expires_at, user_id):
    """The refresh token sealed in the grant, the credential no longer pending."""
    # Locked (PostgreSQL) so a refresh the data plane stores meanwhile cannot interleave.
    grant = db.session.get(CredentialGrant, credential.id, with_for_update=True)
    if grant is None:
        grant = CredentialGrant(
            credential_id=credential.id, client_id=credential.client_id, generation=0
        )
        db.session.add(grant)
    grant.set_refresh_token(current_app.config["PORTCULLIS_KEY_RING"], refresh_token)
    now = utcnow()
    grant.status = "connected"
    grant.connected_at, grant.connected_by = now, user_id
    grant.access_expires_at = access_expires_at
    grant.last_error = grant.last_error_at = grant.refreshing_until = None
    credential.temporary = False
    credential.updated_at = now  # bumps the config version: the data plane sees the change
    db.session.commit()


@bp.get("/oauth/callback")
def oauth_callback():
    web_session = live_session()
    if web_session is None:
        flash("Sign in as the person who clicked Connect to finish connecting.")
        return redirect(url_for("web.login", next=request.full_path))
    state = request.args.get("state")
    if not state or len(state) > MAX_STATE_CHARS:
        return _refused(INVALID_LINK)
    key = state_hash(state)
    pending = db.session.get(OAuthAuthorization, key)
    if pending is None or not pending.is_usable():
        return _refused(INVALID_LINK)
    if pending.user_id != web_session.user_id:
        return _refused(
            "This authorization was started by another user; it can only be finished in the "
            "browser session of the person who clicked Connect."
        )
    authorization = _claim(key)
    if authorization is None:
        return _refused(INVALID_LINK)
    credential = db.session.get(Credential, authorization.credential_id)
    if credential is None or not _is_admin(web_session.user_id, credential.client_id):
        return _refused(INVALID_LINK)
    if request.args.get("error"):
        message = provider_error(request.args["error"], request.args.get("error_description"))
        return _refused(f"The provider did not authorize the connection: {message}")
    code = request.args.get("code")
    if not code:
        return _refused("The provider sent neither a code nor an error.")
    key_ring = current_app.config["PORTCULLIS_KEY_RING"]
    try:
        secret = credential.open_secret(key_ring)
        verifier = authorization.open_code_verifier(key_ring)
    except SecretDecryptionError:
        return _refused("The credential's secret could not be opened with the admin's master keys.")
    try:
        tokens = exchange_code(
            credential.settings or {},
            secret,
            code=code,
            redirect_uri=authorization.redirect_uri,
            code_verifier=verifier,
            allowed=current_app.config["PORTCULLIS_SETTINGS"].allow_targets,
        )
    except ExchangeFailed as exc:
        return _refused(str(exc))
    _store_connection(
        credential, tokens.refresh_token, tokens.access_expires_at, web_session.user_id
    )
    flash(f"Connected: {credential.name} can now mint access tokens.", "success")
    return redirect(
        url_for("web.credential", client_id=credential.client_id, credential_id=credential.id)
    )
