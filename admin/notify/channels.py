"""Where a notifier sends: a webhook's URL (under the SSRF policy) or e-mail recipients.
One check for client notifiers (the Core API) and platform notifiers (CLI and web)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app

from admin.errors import invalid
from models import guarded_http
from models.ssrf_policy import Network


def check_webhook_url(url: str, allowed: tuple[Network, ...] | None = None) -> None:
    """400 naming `url` when the SSRF policy refuses where it points (or it does not resolve).
    `allowed`: the operator's allowances (default: the running app's)."""
    parts = urlsplit(url)
    try:
        port = parts.port or guarded_http.DEFAULT_PORTS[parts.scheme]
    except (ValueError, KeyError):
        raise invalid("url", "Not a valid http(s) URL.") from None
    if allowed is None:
        allowed = current_app.config["PORTCULLIS_SETTINGS"].allow_targets
    try:
        guarded_http.resolve_allowed(parts.hostname or "", port, allowed)
    except guarded_http.OutboundError as exc:
        raise invalid("url", f"{exc}.") from None


def check_channel(
    kind: str, url: str | None, recipients: list[str], allowed: tuple[Network, ...] | None = None
) -> None:
    """A webhook needs a URL it may call and no recipients; an e-mail notifier the reverse."""
    if kind == "webhook":
        if recipients:
            raise invalid("recipients", "Only for email notifiers.")
        if not url:
            raise invalid("url", "Required for a webhook notifier.")
        check_webhook_url(url, allowed)
    else:
        if url:
            raise invalid("url", "Only for webhook notifiers.")
        if not recipients:
            raise invalid("recipients", "Give at least one address for an email notifier.")
