"""How a target's requests leave the gateway: directly, through a fixed proxy, or the pool.

`Target.egress` holds the setting without any credential; a fixed proxy's username and
password are sealed in `Target.egress_secret_*` (AAD `"{target_id}:egress"`). The snapshot
opens them into the frozen dataclasses below, which the data plane's router uses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from models.crypto import KeyRing, SealedSecret
from models.pool import ANONYMITIES, PROTOCOLS
from models.target import Target

FIXED_SCHEMES = ("http", "https", "socks4", "socks5")
ROTATIONS = ("per_request", "sticky")
DEFAULT_STICKY_SECONDS = 60
MAX_STICKY_SECONDS = 86400


@dataclass(frozen=True)
class FixedEgress:
    """One upstream proxy every request to the target goes through."""

    url: str  # scheme://host:port, never with userinfo
    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PoolEgress:
    """Requests go through free active pool proxies matching these filters."""

    protocol: str | None = None
    country: str | None = None
    anonymity: str | None = None
    min_score: float | None = None
    rotation: str = "per_request"
    sticky_seconds: int = DEFAULT_STICKY_SECONDS


Egress = FixedEgress | PoolEgress


def egress_aad(target_id: str) -> str:
    """The associated data a target's sealed egress credentials are bound to."""
    return f"{target_id}:egress"


class EgressError(ValueError):
    """A `targetEgress` value that cannot be used; `field` names the sub-field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


MODES = ("direct", "proxy", "pool")
# `hasCredentials` is read-only: accepted and ignored, so a fetched target can be PUT back.
PROXY_KEYS = frozenset({"mode", "url", "clearCredentials", "hasCredentials"})
POOL_KEYS = frozenset(
    {"mode", "protocol", "country", "anonymity", "minScore", "rotation", "stickySeconds"}
)
MAX_URL_LENGTH = 2048
MAX_USERINFO_LENGTH = 255  # SOCKS5 (RFC 1929) carries at most 255 bytes of each
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def parse_egress(value: object) -> tuple[dict | None, dict | None]:
    """Validate a `targetEgress` input; return `(stored, secrets)`.

    `stored` is what `Target.egress` keeps (None: direct), never holding a credential;
    `secrets` is `{"username", "password"}` from a proxy URL's userinfo, or None when the
    URL carried none (the caller decides whether sealed ones are kept: `apply_egress`).
    Raises `EgressError` naming the sub-field (`url`, `country`, ...).
    """
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise EgressError("mode", "targetEgress must be a JSON object or null.")
    mode = value.get("mode")
    if mode not in MODES:
        raise EgressError("mode", f"Must be one of {', '.join(MODES)}.")
    if mode == "direct":
        _no_unknown(value, frozenset({"mode"}))
        return None, None
    if mode == "proxy":
        _no_unknown(value, PROXY_KEYS)
        clear = value.get("clearCredentials", False)
        if not isinstance(clear, bool):
            raise EgressError("clearCredentials", "Must be true or false.")
        url, secrets = _parse_proxy_url(value.get("url"))
        return {"mode": "proxy", "url": url}, secrets
    _no_unknown(value, POOL_KEYS)
    return _parse_pool(value), None


def _no_unknown(value: dict, allowed: frozenset[str]) -> None:
    for key in value:
        if key not in allowed:
            plain = isinstance(key, str) and len(key) <= 64 and not _CONTROL.search(key)
            name = key if plain else "body"
            raise EgressError(name, f"Unknown field for mode {value['mode']}.")


def _parse_proxy_url(raw: object) -> tuple[str, dict | None]:
    """`scheme://host:port` without userinfo, and the userinfo (percent-decoded) if any."""
    if not isinstance(raw, str) or not raw:
        raise EgressError("url", "Required: the proxy URL, e.g. socks5://host:1080.")
    if len(raw) > MAX_URL_LENGTH:
        raise EgressError("url", f"Longer than {MAX_URL_LENGTH} characters.")
    if _CONTROL.search(raw):
        raise EgressError("url", "Must not contain whitespace or control characters.")
    try:
        parts = urlsplit(raw)
    except ValueError:
        raise EgressError("url", "Not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in FIXED_SCHEMES:
        raise EgressError("url", f"The scheme must be one of {', '.join(FIXED_SCHEMES)}.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise EgressError("url", "Must not contain a path, query or fragment.")
    try:
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise EgressError("url", "Not a valid host and port.") from None
    if not host:
        raise EgressError("url", "Must include a host.")
    if not _valid_host(host):
        raise EgressError("url", "The host is not a valid name or IP address.")
    if port is None or not 1 <= port <= 65535:
        raise EgressError("url", "Must include a port between 1 and 65535.")
    secrets = None
    if "@" in parts.netloc:
        secrets = _userinfo(parts.netloc.rpartition("@")[0])
    bracketed = f"[{host}]" if ":" in host else host
    return f"{scheme}://{bracketed}:{port}", secrets


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return len(host) <= 253 and all(HOST_LABEL.fullmatch(label) for label in labels)
    return True


def _userinfo(userinfo: str) -> dict:
    raw_user, has_password, raw_password = userinfo.partition(":")
    try:
        username = unquote(raw_user, errors="strict")
        password = unquote(raw_password, errors="strict")
    except UnicodeDecodeError:
        raise EgressError("url", "The username or password is not valid UTF-8.") from None
    if not username:
        raise EgressError("url", "The userinfo has no username.")
    for text in (username, password):
        if len(text.encode("utf-8")) > MAX_USERINFO_LENGTH:
            raise EgressError(
                "url", f"Username and password are at most {MAX_USERINFO_LENGTH} bytes each."
            )
        if re.search(r"[\x00\r\n]", text):
            raise EgressError("url", "The username or password holds CR, LF or NUL.")
    return {"username": username, "password": password if has_password else ""}


def _parse_pool(value: dict) -> dict:
    protocol = _one_of(value, "protocol", PROTOCOLS)
    anonymity = _one_of(value, "anonymity", ANONYMITIES)
    country = value.get("country")
    if country is not None:
        if not isinstance(country, str) or not re.fullmatch(r"[A-Za-z]{2}", country):
            raise EgressError("country", "Must be a two-letter country code, e.g. DE.")
        country = country.upper()
    min_score = value.get("minScore")
    if min_score is not None:
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise EgressError("minScore", "Must be a number between 0 and 1.")
        if not 0 <= min_score <= 1:
            raise EgressError("minScore", "Must be a number between 0 and 1.")
        min_score = float(min_score)
    rotation = value.get("rotation", "per_request")
    if rotation not in ROTATIONS:
        raise EgressError("rotation", f"Must be one of {', '.join(ROTATIONS)}.")
    sticky = value.get("stickySeconds", DEFAULT_STICKY_SECONDS)
    if isinstance(sticky, bool) or not isinstance(sticky, int):
        raise EgressError("stickySeconds", f"Must be a whole number 1..{MAX_STICKY_SECONDS}.")
    if not 1 <= sticky <= MAX_STICKY_SECONDS:
        raise EgressError("stickySeconds", f"Must be a whole number 1..{MAX_STICKY_SECONDS}.")
    return {
        "mode": "pool",
        "protocol": protocol,
        "country": country,
        "anonymity": anonymity,
        "minScore": min_score,
        "rotation": rotation,
        "stickySeconds": sticky,
    }


def _one_of(value: dict, key: str, allowed: tuple[str, ...]) -> str | None:
    item = value.get(key)
    if item is None:
        return None
    if not isinstance(item, str) or item.lower() not in allowed:
        raise EgressError(key, f"Must be one of {', '.join(allowed)}.")
    return item.lower()


def seal_egress(target, key_ring: KeyRing, secrets: dict | None) -> None:
    """Seal a fixed proxy's username and password for `target` (None: drop them).

    The target's id must be assigned first: it is part of the AAD.
    """
    if not secrets:
        target.egress_secret_key_id = target.egress_secret_ciphertext = None
        return
    sealed = key_ring.seal(
        {"username": secrets["username"], "password": secrets.get("password", "")},
        egress_aad(target.id),
    )
    target.egress_secret_key_id, target.egress_secret_ciphertext = sealed.key_id, sealed.ciphertext


def apply_egress(target, key_ring: KeyRing, value: object) -> None:
    """Set `target`'s egress from a `targetEgress` input (raises `EgressError`).

    A proxy URL without userinfo keeps the sealed credentials when the proxy's host and
    port stay the same (as secrets are kept on update elsewhere); another endpoint, another
    mode or `"clearCredentials": true` drops them.
    """
    stored, secrets = parse_egress(value)
    if secrets is None and _keeps_credentials(target.egress, stored, value):
        target.egress = stored
        return
    target.egress = stored
    seal_egress(target, key_ring, secrets)


def _keeps_credentials(old: dict | None, new: dict | None, value: object) -> bool:
    if not old or not new or old.get("mode") != "proxy" or new.get("mode") != "proxy":
        return False
    if isinstance(value, dict) and value.get("clearCredentials") is True:
        return False
    return _endpoint(old["url"]) == _endpoint(new["url"])


def _endpoint(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def has_egress_credentials(target) -> bool:
    return target.egress_secret_ciphertext is not None


def load_egress(stored: dict | None, secrets: dict | None = None) -> Egress | None:
    """The dataclass for a stored `Target.egress` (and its opened secrets); None = direct.

    A stored value this version cannot read raises `EgressError` (fail closed: the caller
    must not send such a target's requests directly).
    """
    if not stored:
        return None
    mode = stored.get("mode")
    if mode == "proxy":
        url = stored["url"]
        parts = urlsplit(url)
        secrets = secrets or {}
        return FixedEgress(
            url=url,
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or 0,
            username=secrets.get("username"),
            password=secrets.get("password"),
        )
    if mode == "pool":
        return PoolEgress(
            protocol=stored.get("protocol"),
            country=stored.get("country"),
            anonymity=stored.get("anonymity"),
            min_score=stored.get("minScore"),
            rotation=stored.get("rotation", "per_request"),
            sticky_seconds=stored.get("stickySeconds", DEFAULT_STICKY_SECONDS),
        )
    raise EgressError("mode", f"Stored egress mode {mode!r} is unknown.")


def open_egress(target, key_ring: KeyRing) -> Egress | None:
    """The target's egress with its credentials opened; for the data plane and the admin's
    "test through egress" only, never for an answer. Raises `SecretDecryptionError` when
    the sealed credentials cannot be opened (fail closed)."""
    secrets = None
    if target.egress and target.egress.get("mode") == "proxy" and has_egress_credentials(target):
        sealed = SealedSecret(target.egress_secret_key_id, target.egress_secret_ciphertext)
        secrets = key_ring.open(sealed, egress_aad(target.id))
    return load_egress(target.egress, secrets)


def public_egress(target) -> dict | None:
    """The `targetEgress` answer: the setting without userinfo; proxies say whether
    credentials are sealed. None = direct."""
    return public_egress_of(target.egress, has_egress_credentials(target))


def public_egress_of(stored: dict | None, has_credentials: bool) -> dict | None:
    """`public_egress` from the stored column values (for lists selected as columns)."""
    if not stored:
        return None
    if stored.get("mode") == "proxy":
        return {"mode": "proxy", "url": stored["url"], "hasCredentials": has_credentials}
    return dict(stored)


def reseal_egress_credentials(session, key_ring: KeyRing) -> int:
    """Re-seal every target's egress credentials not sealed with the active master key
    (`run_admin.py rotate-secrets`); how many changed. The caller commits."""
    changed = 0
    query = select(Target).where(
        Target.egress_secret_key_id.is_not(None),
        Target.egress_secret_key_id != key_ring.active_key_id,
    )
    for target in session.scalars(query):
        sealed = SealedSecret(target.egress_secret_key_id, target.egress_secret_ciphertext)
        seal_egress(target, key_ring, key_ring.open(sealed, egress_aad(target.id)))
        changed += 1
    return changed
