"""Payload filters on credentials, targets and proxies: list, create, get, update, delete.

The routes mirror the rules' (`/clients/{cid}/{credentials|targets|proxies}/{id}/filters`);
a credential's filters are its scope's (target credential or proxy credential, as its
type says). Every write bumps the configuration version (`PayloadFilter` is a
`ConfigEntity`), so the data plane's next snapshot carries it.
"""

from __future__ import annotations

from sqlalchemy import select

from admin.api.common import api_blueprint, assign, load_body
from admin.api.scopes import add_scoped_routes, find_child, find_parent
from admin.auth import client_for, current_user
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.filters import FilterSchema
from models import PayloadFilter
from models.enums import Role

bp = api_blueprint("filters")

FILTER_DEFAULTS = {"notes": None}


def _filter(client_id: str, parent_kind: str, parent_id: str, filter_id: str) -> PayloadFilter:
    parent = find_parent(client_id, parent_kind, parent_id)
    return find_child(PayloadFilter, parent, filter_id, "Filter")


def filters_of(parent_kind: str, parent_id: str) -> list[PayloadFilter]:
    """A scope's filters in the order the data plane applies them (creation order)."""
    column = getattr(PayloadFilter, f"{parent_kind}_id")
    return list(
        db.session.scalars(
            select(PayloadFilter)
            .where(column == parent_id)
            .order_by(PayloadFilter.created_at, PayloadFilter.id)
        )
    )


@doc(
    "List payload filters, in the order they apply",
    "filters",
    envelope="filters",
    schema=FilterSchema,
    errors=(401, 404),
)
def list_filters(client_id: str, parent_kind: str, parent_id: str):
    client_for(client_id)
    parent = find_parent(client_id, parent_kind, parent_id)
    return envelope("filters", FilterSchema(many=True).dump(filters_of(parent_kind, parent.id)))


@doc(
    "Create a payload filter (admin)",
    "filters",
    body=FilterSchema,
    envelope="filters",
    schema=FilterSchema,
    status=201,
)
def create_filter(client_id: str, parent_kind: str, parent_id: str):
    client_for(client_id, Role.ADMIN)
    parent = find_parent(client_id, parent_kind, parent_id)
    values = FILTER_DEFAULTS | load_body(FilterSchema())
    payload_filter = PayloadFilter(client_id=client_id, created_by=current_user().id, **values)
    payload_filter.attach_to(parent_kind, parent.id)
    db.session.add(payload_filter)
    db.session.commit()
    return envelope("filters", [FilterSchema().dump(payload_filter)], status=201)


@doc("Get a payload filter", "filters", envelope="filters", schema=FilterSchema, errors=(401, 404))
def get_filter(client_id: str, parent_kind: str, parent_id: str, filter_id: str):
    client_for(client_id)
    payload_filter = _filter(client_id, parent_kind, parent_id, filter_id)
    return envelope("filters", [FilterSchema().dump(payload_filter)])


@doc(
    "Update a payload filter (admin)",
    "filters",
    body=FilterSchema,
    envelope="filters",
    schema=FilterSchema,
)
def update_filter(client_id: str, parent_kind: str, parent_id: str, filter_id: str):
    client_for(client_id, Role.ADMIN)
    payload_filter = _filter(client_id, parent_kind, parent_id, filter_id)
    assign(payload_filter, load_body(FilterSchema(), partial=True))
    db.session.commit()
    return envelope("filters", [FilterSchema().dump(payload_filter)])


@doc("Delete a payload filter (admin)", "filters", errors=(401, 403, 404))
def delete_filter(client_id: str, parent_kind: str, parent_id: str, filter_id: str):
    client_for(client_id, Role.ADMIN)
    payload_filter = _filter(client_id, parent_kind, parent_id, filter_id)
    db.session.delete(payload_filter)
    db.session.commit()
    return message_only("Filter deleted successfully")


add_scoped_routes(bp, "filters", list_filters, ["GET"])
add_scoped_routes(bp, "filters", create_filter, ["POST"])
add_scoped_routes(bp, "filters", get_filter, ["GET"], "/<filter_id>")
add_scoped_routes(bp, "filters", update_filter, ["PUT"], "/<filter_id>")
add_scoped_routes(bp, "filters", delete_filter, ["DELETE"], "/<filter_id>")
