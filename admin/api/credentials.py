"""Credentials. Secrets are sealed on creation and can never be read or changed afterwards."""

from __future__ import annotations

from flask import current_app, jsonify, request
from marshmallow import fields
from sqlalchemy import delete, or_, select

from admin.api.common import (
    api_blueprint,
    assign,
    load_body,
    owned,
    refuse_if_used,
    reject_changes,
)
from admin.auth import client_for, current_user
from admin.errors import ApiError, invalid
from admin.extensions import db
from admin.http import envelope, message_only, query_bool
from admin.oauth import callback_url, start_authorization
from admin.openapi import doc
from admin.schemas.common import ColumnDump
from admin.schemas.credentials import (
    AuthorizationSchema,
    CredentialColumns,
    CredentialConnectionSchema,
    CredentialSchema,
    check_auth_type_allowed,
)
from admin.schemas.secrets import load_secret
from models import Credential, CredentialGrant, OAuthAuthorization, Proxy, isoformat_z, utcnow
from models.credential_grant import AUTHORIZATION_TTL, state_hash
from models.enums import Role, canonical_auth_type
from models.ids import new_id

bp = api_blueprint("credentials")
LIST_DUMP = ColumnDump(CredentialColumns(), Credential)  # see admin/api/proxies.py
IMMUTABLE = {
    "credential_type": "credentialType",
    "auth_type": "credentialAuthType",
    "region": "credentialRegion",
}


CONNECTION = CredentialConnectionSchema()


def _one(credential: Credential, message: str = "Success", status: int = 200):
    answer = CredentialColumns().dump(credential)
    grant = db.session.get(CredentialGrant, credential.id)
    if grant is not None:
        answer["credentialConnection"] = CONNECTION.dump(grant)
    return envelope("credentials", [answer], message=message, status=status)


def _with_connections(client_id: str, answers: list[dict]) -> list[dict]:
    """`answers` with each OAuth2 credential's connection (one query for the client)."""
    if not any(a["credentialAuthType"] == "oauth2" for a in answers):
        return answers
    grants = db.session.scalars(
        select(CredentialGrant).where(CredentialGrant.client_id == client_id)
    )
    by_id = {grant.credential_id: grant for grant in grants}
    for answer in answers:
        grant = by_id.get(answer["credentialId"])
        if grant is not None:
            answer["credentialConnection"] = CONNECTION.dump(grant)
    return answers


def _is_connected_by_person(auth_type: str, settings: dict) -> bool:
    return auth_type == "oauth2" and settings.get("grantType") == "authorization_code"


def _grant_for(credential: Credential, secret: dict) -> CredentialGrant | None:
    """The grant row a new OAuth2 credential starts with: pending until Connect, or
    connected with the refresh token the user gave (grant refresh_token)."""
    grant_type = (credential.settings or {}).get("grantType")
    if credential.auth_type != "oauth2" or grant_type not in (
        "authorization_code",
        "refresh_token",
    ):
        return None
    grant = CredentialGrant(credential_id=credential.id, client_id=credential.client_id)
    grant.status, grant.generation = "pending", 0
    if grant_type == "refresh_token":
        grant.set_refresh_token(current_app.config["PORTCULLIS_KEY_RING"], secret["refreshToken"])
        grant.status = "connected"
        grant.connected_at, grant.connected_by = utcnow(), credential.created_by
    return grant


@bp.get("/clients/<client_id>/credentials")
@doc(
    "List credentials",
    "credentials",
    envelope="credentials",
    schema=CredentialSchema,
    query={"includeTemporary": fields.Boolean(load_default=False)},
)
def list_credentials(client_id: str):
    client_for(client_id)
    include_temporary = query_bool("includeTemporary")
    conditions = () if include_temporary else (Credential.temporary.is_(False),)
    answers = LIST_DUMP.owned(db.session, client_id, *conditions)
    return envelope("credentials", _with_connections(client_id, answers))


@bp.post("/clients/<client_id>/credentials")
@doc(
    "Create a credential (admin); the secret is sealed and never shown",
    "credentials",
    body=CredentialSchema,
    envelope="credentials",
    schema=CredentialSchema,
    status=201,
)
def create_credential(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(CredentialSchema())
    auth_type = canonical_auth_type(values.pop("auth_type"))
    check_auth_type_allowed(values["credential_type"], auth_type)
    secret, settings = load_secret(auth_type, values.pop("credentialSecret", None))
    credential = Credential(
        id=new_id("credential"),
        client_id=client.id,
        created_by=current_user().id,
        auth_type=auth_type.value,
        settings=settings,
        # "Pending authorization" until Connect stores a refresh token.
        temporary=_is_connected_by_person(auth_type.value, settings),
        **values,
    )
    credential.set_secret(current_app.config["PORTCULLIS_KEY_RING"], secret)
    db.session.add(credential)
    grant = _grant_for(credential, secret)
    if grant is not None:
        db.session.flush()  # the credential row first: the grant refers to it
        db.session.add(grant)
    db.session.commit()
    return _one(credential, status=201)


@bp.get("/clients/<client_id>/credentials/<credential_id>")
@doc(
    "Get a credential (without its secret)",
    "credentials",
    envelope="credentials",
    schema=CredentialSchema,
    errors=(401, 403, 404),
)
def get_credential(client_id: str, credential_id: str):
    client_for(client_id)
    return _one(owned(Credential, client_id, credential_id, "Credential"))


@bp.put("/clients/<client_id>/credentials/<credential_id>")
@doc(
    "Update a credential's name, state, expiry or default effect (admin)",
    "credentials",
    body=CredentialSchema,
    envelope="credentials",
    schema=CredentialSchema,
)
def update_credential(client_id: str, credential_id: str):
    client_for(client_id, Role.ADMIN)
    credential = owned(Credential, client_id, credential_id, "Credential")
    values = load_body(CredentialSchema(), partial=True)
    if "credentialSecret" in values:
        raise invalid(
            "credentialSecret",
            "Secrets cannot be viewed or changed after creation; create a new credential.",
        )
    if "auth_type" in values:
        values["auth_type"] = canonical_auth_type(values["auth_type"]).value
    reject_changes(credential, values, IMMUTABLE)
    assign(credential, values)
    db.session.commit()
    return _one(credential)


@bp.delete("/clients/<client_id>/credentials/<credential_id>")
@doc(
    "Delete a credential not used by any proxy (admin)", "credentials", errors=(401, 403, 404, 409)
)
def delete_credential(client_id: str, credential_id: str):
    client_for(client_id, Role.ADMIN)
    credential = owned(Credential, client_id, credential_id, "Credential")
    users = db.session.scalars(
        select(Proxy.id).where(
            or_(
                Proxy.proxy_credential_id == credential.id,
                Proxy.target_credential_id == credential.id,
            )
        )
    ).all()
    refuse_if_used("Credential", users)
    db.session.delete(credential)
    db.session.commit()
    return message_only("Credential deleted successfully")


@bp.post("/clients/<client_id>/credentials/<credential_id>/authorize")
@doc(
    "Start connecting an OAuth2 authorization_code credential (admin): the provider's URL",
    "credentials",
    schema=AuthorizationSchema,
    errors=(400, 401, 403, 404),
)
def authorize_credential(client_id: str, credential_id: str):
    """A Connect: a single-use `state` (stored hashed) and a PKCE verifier (sealed, never
    answered); the person's browser goes to `authorizeUrl` and back to the admin's callback."""
    client_for(client_id, Role.ADMIN)
    credential = owned(Credential, client_id, credential_id, "Credential")
    settings = credential.settings or {}
    if not _is_connected_by_person(credential.auth_type, settings):
        raise ApiError(
            400,
            "NOT_AUTHORIZATION_CODE",
            "Only oauth2 credentials with grantType authorization_code are connected through "
            "their provider.",
        )
    app_settings = current_app.config["PORTCULLIS_SETTINGS"]
    redirect_uri = callback_url(app_settings.public_url, request.host_url)
    start = start_authorization(settings, redirect_uri)
    now = utcnow()
    db.session.execute(  # this credential's Connects that can no longer be used
        delete(OAuthAuthorization).where(
            OAuthAuthorization.credential_id == credential.id,
            OAuthAuthorization.expires_at < now,
        )
    )
    authorization = OAuthAuthorization(
        state_hash=state_hash(start.state),
        credential_id=credential.id,
        user_id=current_user().id,
        redirect_uri=redirect_uri,
        created_at=now,
        expires_at=now + AUTHORIZATION_TTL,
    )
    if start.code_verifier is not None:
        authorization.set_code_verifier(
            current_app.config["PORTCULLIS_KEY_RING"], start.code_verifier
        )
    db.session.add(authorization)
    db.session.commit()
    return jsonify(
        authorizeUrl=start.url, expiresAt=isoformat_z(authorization.expires_at), message="Success"
    )
