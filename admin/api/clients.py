"""Clients (organisations): list, create, get, update, delete, and their configuration."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from admin.api.common import api_blueprint, assign, load_body
from admin.auth import client_for, current_user
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.clients import ClientSchema, ConfigurationBodySchema
from models import Client, Membership
from models.enums import Role

bp = api_blueprint("clients")


def default_configuration() -> dict:
    """New clients start at the platform maxima; proxies copy these limits at creation."""
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    return {
        "limits": {
            "requestsPerMinute": settings.max_requests_per_minute,
            "requestsPerDay": settings.max_requests_per_day,
        }
    }


def merged_configuration(current: dict, update: dict) -> dict:
    limits = {**(current.get("limits") or {}), **update.get("limits", {})}
    return {**current, **update, "limits": limits}


def _one(client: Client, message: str = "Success", status: int = 200):
    return envelope("clients", [ClientSchema().dump(client)], message=message, status=status)


@bp.get("/clients")
@doc(
    "List the clients you are a member of",
    "clients",
    envelope="clients",
    schema=ClientSchema,
    errors=(401,),
)
def list_clients():
    clients = db.session.scalars(
        select(Client)
        .join(Membership)
        .where(Membership.user_id == current_user().id)
        .order_by(Client.created_at, Client.id)
    )
    return envelope("clients", ClientSchema(many=True).dump(clients))


@bp.post("/clients")
@doc(
    "Create a client; you become its owner",
    "clients",
    body=ClientSchema,
    envelope="clients",
    schema=ClientSchema,
    status=201,
    errors=(400, 401, 413),
)
def create_client():
    values = load_body(ClientSchema())
    configuration = merged_configuration(default_configuration(), values.pop("configuration", {}))
    client = Client(created_by=current_user().id, configuration=configuration, **values)
    client.memberships.append(Membership(user=current_user(), roles=[Role.OWNER.value]))
    db.session.add(client)
    db.session.commit()
    return _one(client, status=201)


@bp.get("/clients/<client_id>")
@doc("Get a client", "clients", envelope="clients", schema=ClientSchema, errors=(401, 404))
def get_client(client_id: str):
    return _one(client_for(client_id))


@bp.put("/clients/<client_id>")
@doc(
    "Update a client (admin)", "clients", body=ClientSchema, envelope="clients", schema=ClientSchema
)
def update_client(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(ClientSchema(), partial=True)
    if "configuration" in values:
        values["configuration"] = merged_configuration(
            client.configuration, values["configuration"]
        )
    assign(client, values)
    db.session.commit()
    return _one(client)


@bp.delete("/clients/<client_id>")
@doc("Delete a client and everything in it (owner)", "clients", errors=(401, 403, 404))
def delete_client(client_id: str):
    client = client_for(client_id, Role.OWNER)
    db.session.delete(client)
    db.session.commit()
    return message_only("Client deleted successfully")


@bp.put("/clients/<client_id>/configuration")
@doc(
    "Set the client's default limits (admin)",
    "clients",
    body=ConfigurationBodySchema,
    envelope="clients",
    schema=ClientSchema,
)
def put_configuration(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(ConfigurationBodySchema())
    client.configuration = merged_configuration(client.configuration, values["configuration"])
    db.session.commit()
    return _one(client)
