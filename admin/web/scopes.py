"""The credential, proxy or target that a page of rules or payload filters belongs to."""

from __future__ import annotations

from flask import abort

from admin.web.core_api import get_one
from admin.web.views_config import KINDS


def scope_parent(client_id: str, kind: str, parent_id: str) -> dict:
    """`kind` (credentials, proxies, targets) record `parent_id` as the pages show it:
    its kind, id, name and singular noun; 404 for an unknown kind or record."""
    if kind not in KINDS:
        abort(404)
    record = get_one(f"/clients/{client_id}/{kind}/{parent_id}", kind)
    singular = KINDS[kind][0]
    return {"kind": kind, "id": parent_id, "name": record[f"{singular}Name"], "singular": singular}
