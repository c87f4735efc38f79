"""Proxies: bind a proxy credential, a target and a target credential of one client and region."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import or_, select

from admin.api.common import api_blueprint, assign, load_body, reject_changes
from admin.auth import client_for, current_user
from admin.errors import ApiError, invalid, not_found
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.common import ColumnDump
from admin.schemas.proxies import ProxySchema
from models import Client, Credential, Proxy, Target
from models.enums import CredentialType, Role

bp = api_blueprint("proxies")
# A client may hold thousands of proxies: the list is dumped from plain rows (same output).
LIST_DUMP = ColumnDump(ProxySchema(), Proxy)

# attribute → (API field, model, required credential type or None for the target)
REFERENCES = {
    "proxy_credential_id": ("proxyProxyCredentialId", Credential, CredentialType.PROXY),
    "target_id": ("proxyTargetId", Target, None),
    "target_credential_id": ("proxyTargetCredentialId", Credential, CredentialType.TARGET),
}


def find_proxy(client_id: str, proxy_ref: str) -> Proxy:
    """A proxy of the client by id or alias; 404 otherwise."""
    proxy = db.session.scalar(
        select(Proxy).where(
            Proxy.client_id == client_id, or_(Proxy.id == proxy_ref, Proxy.alias == proxy_ref)
        )
    )
    if proxy is None:
        raise not_found("Proxy")
    return proxy


def proxy_for(client_id: str, proxy_ref: str, role: Role = Role.USER) -> Proxy:
    """A proxy of client `client_id`, if the caller holds at least `role` in that client."""
    client_for(client_id, role)
    return find_proxy(client_id, proxy_ref)


def check_references(client: Client, values: dict, region: str) -> None:
    """Referenced records must be this client's, of the right type, in the proxy's region."""
    for attribute, (api_name, model, credential_type) in REFERENCES.items():
        if attribute not in values:
            continue
        record = db.session.get(model, values[attribute])
        if record is None or record.client_id != client.id:
            raise invalid(api_name, f"No {model.__name__.lower()} with this id in this client.")
        if credential_type and record.credential_type != credential_type:
            raise invalid(api_name, f"Must be a {credential_type.value} credential.")
        if record.region != region:
            raise invalid(
                api_name, f"Is in region {record.region}; the proxy is in region {region}."
            )


def check_alias_free(client: Client, alias: str | None, proxy_id: str | None = None) -> None:
    if alias is None:
        return
    taken = db.session.scalar(
        select(Proxy.id).where(Proxy.client_id == client.id, Proxy.alias == alias)
    )
    if taken is not None and taken != proxy_id:
        message = "Already used by another proxy in this client."
        raise ApiError(
            409, "CONFLICT", f"proxyAlias: {message}", {"fields": {"proxyAlias": [message]}}
        )


def _one(proxy: Proxy, status: int = 200):
    return envelope("proxies", [ProxySchema().dump(proxy)], status=status)


@bp.get("/clients/<client_id>/proxies")
@doc("List proxies", "proxies", envelope="proxies", schema=ProxySchema, errors=(401, 404))
def list_proxies(client_id: str):
    client_for(client_id)
    return envelope("proxies", LIST_DUMP.owned(db.session, client_id))


def default_limits(client: Client) -> dict[str, int]:
    """A new proxy's limits when it names none: the client's defaults, capped by the
    platform maxima (lowered since the defaults were saved?), or the maxima when unset."""
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    limits = client.limits
    maxima = {
        "max_requests_per_minute": ("requestsPerMinute", settings.max_requests_per_minute),
        "max_requests_per_day": ("requestsPerDay", settings.max_requests_per_day),
    }
    return {
        column: min(limits.get(key) or maximum, maximum)
        for column, (key, maximum) in maxima.items()
    }


@bp.post("/clients/<client_id>/proxies")
@doc(
    "Create a proxy (admin)",
    "proxies",
    body=ProxySchema,
    envelope="proxies",
    schema=ProxySchema,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
def create_proxy(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(ProxySchema())
    check_references(client, values, values["region"])
    check_alias_free(client, values.get("alias"))
    for column, value in default_limits(client).items():
        values.setdefault(column, value)
    proxy = Proxy(client_id=client.id, created_by=current_user().id, **values)
    db.session.add(proxy)
    db.session.commit()
    return _one(proxy, status=201)


@bp.get("/clients/<client_id>/proxies/<proxy_id>")
@doc(
    "Get a proxy by id or alias",
    "proxies",
    envelope="proxies",
    schema=ProxySchema,
    errors=(401, 404),
)
def get_proxy(client_id: str, proxy_id: str):
    return _one(proxy_for(client_id, proxy_id))


@bp.put("/clients/<client_id>/proxies/<proxy_id>")
@doc(
    "Update a proxy (admin); the region cannot change",
    "proxies",
    body=ProxySchema,
    envelope="proxies",
    schema=ProxySchema,
    errors=(400, 401, 403, 404, 409),
)
def update_proxy(client_id: str, proxy_id: str):
    client = client_for(client_id, Role.ADMIN)
    proxy = find_proxy(client_id, proxy_id)
    values = load_body(ProxySchema(), partial=True)
    reject_changes(proxy, values, {"region": "proxyRegion"})
    check_references(client, values, proxy.region)
    if "alias" in values:
        check_alias_free(client, values["alias"], proxy.id)
    assign(proxy, values)
    db.session.commit()
    return _one(proxy)


@bp.delete("/clients/<client_id>/proxies/<proxy_id>")
@doc("Delete a proxy (admin)", "proxies", errors=(401, 403, 404))
def delete_proxy(client_id: str, proxy_id: str):
    db.session.delete(proxy_for(client_id, proxy_id, Role.ADMIN))
    db.session.commit()
    return message_only("Proxy deleted successfully")
