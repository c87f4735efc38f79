"""Helpers shared by the resource blueprints."""

from __future__ import annotations

from flask import Blueprint
from marshmallow import Schema
from sqlalchemy import Select, select

from admin.auth import authenticate
from admin.errors import conflict, invalid, not_found
from admin.extensions import db
from admin.http import json_body, refuse_nul_arguments


def api_blueprint(name: str) -> Blueprint:
    """A blueprint whose every request must carry a valid user token."""
    bp = Blueprint(name, __name__)
    bp.before_request(authenticate)
    bp.before_request(refuse_nul_arguments)
    return bp


def load_body(schema: Schema, *, partial: bool = False) -> dict:
    """The validated request body, keyed by model attribute.

    `partial` (for updates) lets top-level fields be omitted; nested objects
    that are sent must still be complete.
    """
    return schema.load(json_body(), partial=tuple(schema.load_fields) if partial else False)


def owned(model, client_id: str, record_id: str, what: str):
    """`model` row `record_id` if it belongs to `client_id`; otherwise 404."""
    record = db.session.get(model, record_id)
    if record is None or record.client_id != client_id:
        raise not_found(what)
    return record


def list_owned(model, client_id: str) -> list:
    return list(
        db.session.scalars(
            select(model).where(model.client_id == client_id).order_by(model.created_at, model.id)
        )
    )


def one_page(query: Select, limit: int) -> tuple[list, bool]:
    """At most `limit` rows of the ordered `query`, and whether more rows follow."""
    rows = db.session.scalars(query.limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit


def reject_changes(record, values: dict, immutable: dict[str, str]) -> None:
    """400 if `values` changes an attribute that is fixed at creation (same value is fine)."""
    for attribute, api_name in immutable.items():
        if attribute in values and values[attribute] != getattr(record, attribute):
            raise invalid(api_name, "Cannot be changed after creation.")


def assign(record, values: dict) -> None:
    for attribute, value in values.items():
        setattr(record, attribute, value)


def refuse_if_used(what: str, proxy_ids: list[str]) -> None:
    """409 naming the proxies that still use a credential or target about to be deleted."""
    if proxy_ids:
        raise conflict(
            f"{what} is used by proxies {', '.join(proxy_ids)}; change or delete them first",
            {"proxies": proxy_ids},
        )
