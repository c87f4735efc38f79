"""Budgets: a client's balance and credit ledger, grants, and each proxy's price.

Reading needs membership of the client; grants, thresholds and prices need the
admin role (owners hold it too). Every write is one transaction: it is stored
whole or not at all.
"""

from __future__ import annotations

from flask import request
from sqlalchemy import select

from admin.api.common import api_blueprint, load_body, one_page
from admin.api.proxies import proxy_for
from admin.auth import client_for, current_user
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.budgets import (
    BudgetSchema,
    EntryQuerySchema,
    EntrySchema,
    GrantSchema,
    PriceSchema,
)
from models.credit import ClientBudget, CreditEntry, ProxyPrice, balance_micro, grant
from models.enums import Role

bp = api_blueprint("budgets")


def _budget(client_id: str) -> dict:
    row = db.session.get(ClientBudget, client_id)
    threshold = row.low_threshold_micro if row else 0
    balance = balance_micro(db.session, client_id)
    return {
        "client_id": client_id,
        "balance": balance,
        "low_threshold": threshold,
        "low": balance < threshold,
    }


@bp.get("/clients/<client_id>/budget")
@doc(
    "A client's balance and low-budget threshold",
    "budgets",
    envelope="budget",
    schema=BudgetSchema,
    errors=(401, 404),
)
def get_budget(client_id: str):
    client = client_for(client_id)
    return envelope("budget", [BudgetSchema().dump(_budget(client.id))])


@bp.put("/clients/<client_id>/budget")
@doc(
    "Set the low-budget threshold (admin)",
    "budgets",
    body=BudgetSchema,
    envelope="budget",
    schema=BudgetSchema,
    errors=(400, 401, 403, 404),
)
def update_budget(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(BudgetSchema())
    row = db.session.get(ClientBudget, client.id)
    if row is None:
        row = ClientBudget(client_id=client.id, granted_micro=0)
        db.session.add(row)
    row.low_threshold_micro = values["low_threshold"]
    db.session.commit()
    return envelope("budget", [BudgetSchema().dump(_budget(client.id))])


@bp.post("/clients/<client_id>/budget/grants")
@doc(
    "Grant credits (admin or owner)",
    "budgets",
    body=GrantSchema,
    envelope="entries",
    schema=EntrySchema,
    status=201,
    errors=(400, 401, 403, 404),
)
def create_grant(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(GrantSchema())
    entry = grant(db.session, client.id, values["amount"], values["description"], current_user().id)
    db.session.commit()
    return envelope("entries", [EntrySchema().dump(entry)], status=201)


@bp.get("/clients/<client_id>/budget/entries")
@doc(
    "List ledger entries, newest first, a page at a time",
    "budgets",
    envelope="entries",
    schema=EntrySchema,
    query=EntryQuerySchema().fields,
    errors=(400, 401, 404),
)
def list_entries(client_id: str):
    client = client_for(client_id)
    args = EntryQuerySchema().load(request.args.to_dict())
    query = select(CreditEntry).where(CreditEntry.client_id == client.id)
    if "before" in args:
        query = query.where(CreditEntry.id < args["before"])
    rows, more = one_page(query.order_by(CreditEntry.id.desc()), args["limit"])
    return envelope(
        "entries",
        EntrySchema(many=True).dump(rows),
        nextBefore=rows[-1].id if more else None,
        limitReached=more,
    )


@bp.get("/clients/<client_id>/proxies/<proxy_id>/price")
@doc(
    "A proxy's price (zero when none is set)",
    "budgets",
    envelope="prices",
    schema=PriceSchema,
    errors=(401, 404),
)
def get_price(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    price = db.session.get(ProxyPrice, proxy.id) or ProxyPrice(
        proxy_id=proxy.id, per_request_micro=0, per_units_micro=0, unit_size=1
    )
    return envelope("prices", [PriceSchema().dump(price)])


@bp.put("/clients/<client_id>/proxies/<proxy_id>/price")
@doc(
    "Set a proxy's price (admin)",
    "budgets",
    body=PriceSchema,
    envelope="prices",
    schema=PriceSchema,
    errors=(400, 401, 403, 404),
)
def update_price(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id, Role.ADMIN)
    values = load_body(PriceSchema())
    price = db.session.get(ProxyPrice, proxy.id)
    if price is None:
        price = ProxyPrice(proxy_id=proxy.id, client_id=proxy.client_id)
        db.session.add(price)
    for attribute, value in values.items():
        setattr(price, attribute, value)
    db.session.commit()
    return envelope("prices", [PriceSchema().dump(price)])
