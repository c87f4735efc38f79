"""The target form's egress section, to and from the Core API's `targetEgress`.

The proxy's username and password are separate inputs; they become the URL's userinfo
(percent-encoded) only in the body sent to the API, which seals them. Left blank, the URL
goes without userinfo and the API keeps the saved ones (same host and port). The form never
shows a saved username or password.
"""

from __future__ import annotations

from urllib.parse import quote

from admin.web.forms import TargetForm


def _number(text: str | None, kind: type) -> object:
    """`text` as a number of `kind` when it reads as one; otherwise as typed (the API then
    names the field), or None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        return text


def _with_userinfo(url: str, username: str, password: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url  # not a URL the API accepts: it says so
    authority, slash, tail = rest.partition("/")
    host = authority.rpartition("@")[2]
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}"
    return f"{scheme}://{userinfo}@{host}{slash}{tail}"


def egress_body(form: TargetForm) -> dict | None:
    """The `targetEgress` the form asks for (None: direct)."""
    mode = form.egress_mode.data
    if mode == "proxy":
        url = (form.egress_url.data or "").strip()
        username, password = form.egress_username.data or "", form.egress_password.data or ""
        if username or password:
            url = _with_userinfo(url, username, password)
        body: dict = {"mode": "proxy", "url": url}
        if form.egress_clear.data:
            body["clearCredentials"] = True
        return body
    if mode == "pool":
        body = {"mode": "pool", "rotation": form.pool_rotation.data}
        for key, value in (
            ("protocol", form.pool_protocol.data or None),
            ("anonymity", form.pool_anonymity.data or None),
            ("country", (form.pool_country.data or "").strip() or None),
            ("minScore", _number(form.pool_min_score.data, float)),
            ("stickySeconds", _number(form.pool_sticky_seconds.data, int)),
        ):
            if value is not None:
                body[key] = value
        return body
    return None


def egress_values(egress: dict | None) -> dict:
    """The form's egress inputs for a target's `targetEgress` answer."""
    if not egress:
        return {"egress_mode": "direct"}
    if egress["mode"] == "proxy":
        return {"egress_mode": "proxy", "egress_url": egress["url"]}
    sticky = egress.get("stickySeconds")
    return {
        "egress_mode": "pool",
        "pool_protocol": egress.get("protocol") or "",
        "pool_country": egress.get("country") or "",
        "pool_anonymity": egress.get("anonymity") or "",
        "pool_min_score": "" if egress.get("minScore") is None else str(egress["minScore"]),
        "pool_rotation": egress.get("rotation") or "per_request",
        "pool_sticky_seconds": "" if sticky is None else str(sticky),
    }


def without_userinfo(url: str) -> str:
    """`url` with any `user:password@` removed from its authority."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rpartition("@")[2] if "@" in url.split("/", 1)[0] else url
    authority, slash, tail = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{tail}"


def hide_credentials(form: TargetForm) -> TargetForm:
    """Before the form is shown again (e.g. after a refusal): the proxy's username, password
    and any userinfo typed into the URL are never written back into the page."""
    form.egress_username.data = ""
    form.egress_password.data = ""
    form.egress_url.data = without_userinfo(form.egress_url.data or "")
    return form
