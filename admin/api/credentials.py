"""Credentials. Secrets are sealed on creation and can never be read or changed afterwards."""

from __future__ import annotations

from flask import current_app
from marshmallow import fields
from sqlalchemy import or_, select

from admin.api.common import (
    api_blueprint,
    assign,
    load_body,
    owned,
    refuse_if_used,
    reject_changes,
)
from admin.auth import client_for, current_user
from admin.errors import invalid
from admin.extensions import db
from admin.http import envelope, message_only, query_bool
from admin.openapi import doc
from admin.schemas.common import ColumnDump
from admin.schemas.credentials import CredentialSchema, check_auth_type_allowed
from admin.schemas.secrets import load_secret
from models import Credential, Proxy
from models.enums import Role, canonical_auth_type
from models.ids import new_id

bp = api_blueprint("credentials")
LIST_DUMP = ColumnDump(CredentialSchema(), Credential)  # see admin/api/proxies.py
IMMUTABLE = {
    "credential_type": "credentialType",
    "auth_type": "credentialAuthType",
    "region": "credentialRegion",
}


def _one(credential: Credential, message: str = "Success", status: int = 200):
    return envelope(
        "credentials", [CredentialSchema().dump(credential)], message=message, status=status
    )


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
    return envelope("credentials", LIST_DUMP.owned(db.session, client_id, *conditions))


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
        **values,
    )
    credential.set_secret(current_app.config["PORTCULLIS_KEY_RING"], secret)
    db.session.add(credential)
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
