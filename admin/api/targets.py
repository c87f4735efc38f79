"""Targets: the upstream APIs, with an immutable region."""

from __future__ import annotations

from sqlalchemy import select

from admin.api.common import (
    api_blueprint,
    assign,
    load_body,
    owned,
    refuse_if_used,
    reject_changes,
)
from admin.auth import client_for, current_user
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.common import ColumnDump
from admin.schemas.targets import TargetSchema
from models import Proxy, Target
from models.enums import Role

bp = api_blueprint("targets")
LIST_DUMP = ColumnDump(TargetSchema(), Target)  # thousands per client: see admin/api/proxies.py


def _one(target: Target, status: int = 200):
    return envelope("targets", [TargetSchema().dump(target)], status=status)


@bp.get("/clients/<client_id>/targets")
@doc("List targets", "targets", envelope="targets", schema=TargetSchema, errors=(401, 404))
def list_targets(client_id: str):
    client_for(client_id)
    return envelope("targets", LIST_DUMP.owned(db.session, client_id))


@bp.post("/clients/<client_id>/targets")
@doc(
    "Create a target (admin)",
    "targets",
    body=TargetSchema,
    envelope="targets",
    schema=TargetSchema,
    status=201,
)
def create_target(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(TargetSchema())
    target = Target(client_id=client.id, created_by=current_user().id, **values)
    db.session.add(target)
    db.session.commit()
    return _one(target, status=201)


@bp.get("/clients/<client_id>/targets/<target_id>")
@doc("Get a target", "targets", envelope="targets", schema=TargetSchema, errors=(401, 404))
def get_target(client_id: str, target_id: str):
    client_for(client_id)
    return _one(owned(Target, client_id, target_id, "Target"))


@bp.put("/clients/<client_id>/targets/<target_id>")
@doc(
    "Update a target (admin); the region cannot change",
    "targets",
    body=TargetSchema,
    envelope="targets",
    schema=TargetSchema,
)
def update_target(client_id: str, target_id: str):
    client_for(client_id, Role.ADMIN)
    target = owned(Target, client_id, target_id, "Target")
    values = load_body(TargetSchema(), partial=True)
    reject_changes(target, values, {"region": "targetRegion"})
    assign(target, values)
    db.session.commit()
    return _one(target)


@bp.delete("/clients/<client_id>/targets/<target_id>")
@doc("Delete a target not used by any proxy (admin)", "targets", errors=(401, 403, 404, 409))
def delete_target(client_id: str, target_id: str):
    client_for(client_id, Role.ADMIN)
    target = owned(Target, client_id, target_id, "Target")
    users = db.session.scalars(select(Proxy.id).where(Proxy.target_id == target.id)).all()
    refuse_if_used("Target", users)
    db.session.delete(target)
    db.session.commit()
    return message_only("Target deleted successfully")
