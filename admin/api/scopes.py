"""Routes of records that belong to a credential, a proxy or a target (rules, payload filters).

`/clients/{cid}/{credentials|proxies|targets}/{id}/<resource>[/{itemId}]`: one view
function serves the three parent kinds, told apart by its `parent_kind` argument.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint

from admin.api.common import owned
from admin.api.proxies import find_proxy
from admin.errors import not_found
from admin.extensions import db
from models import Credential, Target
from models.scoped import PARENT_KINDS, OneParent


def find_parent(client_id: str, parent_kind: str, parent_id: str):
    """The client's credential, proxy (by id or alias) or target; 404 otherwise."""
    if parent_kind == "proxy":
        return find_proxy(client_id, parent_id)
    model = Credential if parent_kind == "credential" else Target
    return owned(model, client_id, parent_id, model.__name__)


def find_child(model: type[OneParent], parent, item_id: str, what: str):
    """`model` row `item_id` if it belongs to `parent`; otherwise 404 naming `what`."""
    item = db.session.get(model, item_id)
    if item is None or item.parent_id != parent.id:
        raise not_found(what)
    return item


def add_scoped_routes(
    bp: Blueprint, resource: str, view: Callable, methods: list[str], suffix: str = ""
) -> None:
    """Serve `view` at `/clients/<client_id>/<parents>/<parent_id>/<resource><suffix>` for
    each parent kind (endpoint `<view name>_<kind>`)."""
    for kind, plural in PARENT_KINDS.items():
        bp.add_url_rule(
            f"/clients/<client_id>/{plural}/<parent_id>/{resource}{suffix}",
            endpoint=f"{view.__name__}_{kind}",
            view_func=view,
            methods=methods,
            defaults={"parent_kind": kind},
        )
