"""Identifiers with a readable prefix (`cli_`, `cred_`, `tgt_`, `proxy_`, `rule_`, ...)."""

from __future__ import annotations

import secrets

PREFIXES = {
    "user": "usr",
    "token": "tok",
    "client": "cli",
    "credential": "cred",
    "target": "tgt",
    "proxy": "proxy",
    "rule": "rule",
    "meter": "meter",
    "notification": "notif",
    "web_session": "sess",
    "invite": "inv",
    "notifier": "ntf",
    "delivery": "dlv",
    "event": "evt",
}


def new_id(kind: str) -> str:
    """A new random id for an entity of `kind`, e.g. `proxy_3f9a0c1b2d4e5f60`."""
    return f"{PREFIXES[kind]}_{secrets.token_hex(8)}"
