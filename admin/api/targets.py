"""Targets: the upstream APIs, with an immutable region."""

from __future__ import annotations

from flask import current_app
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
from admin.errors import invalid
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.common import ColumnDump
from admin.schemas.targets import EgressInput, TargetColumns, TargetSchema
from models import Proxy, Target
from models.egress import EgressError, apply_egress, public_egress_of
from models.enums import Role
from models.ids import new_id

bp = api_blueprint("targets")
LIST_DUMP = ColumnDump(TargetColumns(), Target)  # thousands per client: see admin/api/proxies.py


def _one(target: Target, status: int = 200):
    return envelope("targets", [TargetSchema().dump(target)], status=status)


def _set_egress(target: Target, wanted: EgressInput | None) -> None:
    """Apply a validated `targetEgress` (sealing a proxy's userinfo); None: left as it is."""
    if wanted is None:
        return
    try:
        apply_egress(target, current_app.config["PORTCULLIS_KEY_RING"], wanted.value)
    except EgressError as exc:  # validated already; kept so no path skips the check
        raise invalid(f"targetEgress.{exc.field}", exc.message) from None


def _with_egress(client_id: str, answers: list[dict]) -> list[dict]:
    """`answers` with each target's `targetEgress` (one query of three columns)."""
    rows = db.session.execute(
        select(Target.id, Target.egress, Target.egress_secret_ciphertext.is_not(None)).where(
            Target.client_id == client_id
        )
    )
    by_id = {target_id: public_egress_of(egress, sealed) for target_id, egress, sealed in rows}
    for answer in answers:
        answer["targetEgress"] = by_id.get(answer["targetId"])
    return answers


@bp.get("/clients/<client_id>/targets")
@doc("List targets", "targets", envelope="targets", schema=TargetSchema, errors=(401, 404))
def list_targets(client_id: str):
    client_for(client_id)
    return envelope("targets", _with_egress(client_id, LIST_DUMP.owned(db.session, client_id)))


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
    egress = values.pop("egress", None)
    target = Target(
        id=new_id("target"), client_id=client.id, created_by=current_user().id, **values
    )
    _set_egress(target, egress)  # the id is assigned: it is the sealed credentials' AAD
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
    egress = values.pop("egress", None)
    assign(target, values)
    _set_egress(target, egress)
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
