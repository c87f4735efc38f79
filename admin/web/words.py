"""Words for people instead of API names: plurals, scope names, settings as `label: value`."""

from __future__ import annotations

import re

# The rule and filter scopes as the API names them (`models.rule_scopes`), in words.
SCOPE_WORDS = {
    "proxyCredential": "proxy credential",
    "targetCredential": "target credential",
    "proxy": "proxy",
    "target": "target",
}
# Credential settings (`credentialSettings`) whose humanized name would read wrongly.
SETTING_LABELS = {
    "in": "Sent in",
    "name": "Name",
    "tokenUrl": "Token URL",
    "authorizeUrl": "Authorize URL",
    "jwksUrl": "JWKS URL",
    "clientId": "Client ID",
    "usePkce": "PKCE",
    "ttlFrom": "Lifetime from",
    "ttlSeconds": "Lifetime (seconds)",
    "ttlPath": "Lifetime JSON path",
    "injectIn": "Token sent in",
}
_IRREGULAR = {"proxy": "proxies", "policy": "policies", "entry": "entries", "is": "are"}


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 proxy credential`, `2 proxy credentials`, `0 proxies` (the last word is pluralised)."""
    if count == 1:
        return f"{count} {singular}"
    if plural_form is None:
        head, _, last = singular.rpartition(" ")
        last = _IRREGULAR.get(last, last + ("es" if last.endswith(("s", "x", "ch")) else "s"))
        plural_form = f"{head} {last}".strip()
    return f"{count} {plural_form}"


def humanize(name: str) -> str:
    """`tokenUrl` → `Token url`; `grant_type` → `Grant type` (known names: SETTING_LABELS)."""
    if name in SETTING_LABELS:
        return SETTING_LABELS[name]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").lower()
    return words[:1].upper() + words[1:]


def scope_words(scope: str | None) -> str:
    """A rule scope's API name in words (`proxyCredential` → `proxy credential`)."""
    if not scope:
        return ""
    return SCOPE_WORDS.get(scope, humanize(scope).lower())


def _value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_value(v)}" for k, v in value.items()) or "none"
    return "" if value is None else str(value)


def setting_lines(settings: dict | None) -> list[tuple[str, str]]:
    """A credential's non-secret settings as (label, value) pairs, empty values left out."""
    return [
        (humanize(key), _value(value))
        for key, value in (settings or {}).items()
        if value not in (None, "", [], {})
    ]


def when(iso: str | None) -> str:
    """The API's `2026-11-30T16:17:08.517Z` as `2026-11-30 16:17:08 UTC`; empty stays empty."""
    if not iso:
        return ""
    return iso.replace("T", " ", 1).split(".", 1)[0].rstrip("Z") + " UTC"
