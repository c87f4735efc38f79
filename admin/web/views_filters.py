"""The payload filters of a credential, a target or a proxy: list, add, edit, delete."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get, get_one
from admin.web.forms_budget import FilterForm
from admin.web.scopes import scope_parent
from admin.web.session import can, load_client, require, signed_in

# The scopes of a proxy, in the order the data plane applies their filters.
PROXY_SCOPES = (
    ("target credential", "credentials", "proxyTargetCredentialId"),
    ("target", "targets", "proxyTargetId"),
    ("proxy credential", "credentials", "proxyProxyCredentialId"),
    ("proxy", "proxies", "proxyId"),
)


def _filters_url(client_id: str, kind: str, parent_id: str) -> str:
    return url_for("web.filters", client_id=client_id, kind=kind, parent_id=parent_id)


def _proxy_scopes(client_id: str, kind: str, parent_id: str) -> list[dict]:
    """For a proxy: its four scopes, in application order, with their filter pages."""
    if kind != "proxies":
        return []
    proxy = get_one(f"/clients/{client_id}/proxies/{parent_id}", "proxies")
    return [
        {"label": label, "url": _filters_url(client_id, scope_kind, proxy[key])}
        for label, scope_kind, key in PROXY_SCOPES
    ]


@bp.route("/c/<client_id>/<kind>/<parent_id>/filters", methods=["GET", "POST"])
@signed_in
def filters(client_id: str, kind: str, parent_id: str):
    """A scope's payload filters in the order they apply; admins add them here."""
    load_client(client_id)
    parent = scope_parent(client_id, kind, parent_id)
    base = f"/clients/{client_id}/{kind}/{parent_id}/filters"
    form = FilterForm()
    if can("admin") and form.submit_ok():
        answer = call("POST", base, form.body())
        if answer.ok:
            flash(f"Filter {answer.item('filters')['filterId']} added.")
            return redirect(_filters_url(client_id, kind, parent_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template(
        "web/filters.html",
        parent=parent,
        filters=get(base).items("filters"),
        form=form,
        scopes=_proxy_scopes(client_id, kind, parent_id),
    )


@bp.route("/c/<client_id>/<kind>/<parent_id>/filters/<filter_id>", methods=["GET", "POST"])
@signed_in
def edit_filter(client_id: str, kind: str, parent_id: str, filter_id: str):
    """Change a filter's action, paths or notes; it keeps its place in the order."""
    load_client(client_id)
    require("admin")
    parent = scope_parent(client_id, kind, parent_id)
    url = f"/clients/{client_id}/{kind}/{parent_id}/filters/{filter_id}"
    form = FilterForm()
    if form.submit_ok():
        answer = call("PUT", url, form.body(clear_notes=True))
        if answer.ok:
            flash(f"Filter {filter_id} saved.")
            return redirect(_filters_url(client_id, kind, parent_id))
        form.show_errors(answer.field_errors, answer.message)
    else:
        form.fill(get_one(url, "filters"))
    return render_template("web/filter_edit.html", parent=parent, form=form, filter_id=filter_id)


@bp.route("/c/<client_id>/<kind>/<parent_id>/filters/<filter_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_filter(client_id: str, kind: str, parent_id: str, filter_id: str):
    load_client(client_id)
    require("admin")
    scope_parent(client_id, kind, parent_id)
    return confirm_then_delete(
        f"/clients/{client_id}/{kind}/{parent_id}/filters/{filter_id}",
        back=_filters_url(client_id, kind, parent_id),
        question="Delete this payload filter?",
        consequence="Answers are passed on without it from the next configuration poll on.",
        action="Delete filter",
        done="Filter deleted.",
    )
