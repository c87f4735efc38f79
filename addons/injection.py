"""What goes to the target: the caller's credential out, the target credential in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_plus

from mitmproxy.http import Headers, Request

from addons.flow_url import point_at
from models.credential_parts import (
    AUTHORIZATION,
    minted_token_parts,
    mints_token,
    target_credential_parts,
)
from models.redaction import REDACTED, SENSITIVE_NAME

if TYPE_CHECKING:
    from addons.snapshot import CredentialView, ProxyView

# Connection-level headers never forwarded (RFC 9110 §7.6.1); framing is mitmproxy's job.
HOP_BY_HOP = (
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "upgrade",
)

SHOWN_REDACTED = quote(REDACTED, safe="")  # as a query value


def caller_credential_names(credential: CredentialView) -> tuple[set[str], set[str]]:
    """Header names (lower case) and query names that may carry the caller's credential."""
    headers, query = {AUTHORIZATION.lower()}, {AUTHORIZATION}
    settings = credential.settings
    if credential.auth_type == "apiKey" and settings.get("in") == "query":
        query.add(settings["name"])
    elif credential.auth_type == "apiKey":
        headers.add(settings.get("name", AUTHORIZATION).lower())
    elif credential.auth_type in ("bearer", "jwt"):
        headers.add(settings.get("header", AUTHORIZATION).lower())
    return headers, query


def strip_headers(headers: Headers, names: set[str]) -> None:
    """Remove every field named in `names` (lower case), the hop-by-hop ones and those the
    Connection header lists, in one pass over the fields (a `pop` per name costs ~20 µs)."""
    fields = headers.fields
    listed = {
        token.strip().lower()
        for name, value in fields
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    dropped = {*names, *HOP_BY_HOP, *listed}
    kept = tuple(field for field in fields if field[0].decode("latin-1").lower() not in dropped)
    if len(kept) != len(fields):
        headers.fields = kept


def filtered_query(raw: str, drop: set[str]) -> list[str]:
    """The raw `name=value` items of `raw` whose decoded name is not in `drop`."""
    return [
        item for item in raw.split("&") if item and unquote_plus(item.split("=")[0]) not in drop
    ]


def encode_pair(name: str, value: str) -> str:
    return f"{quote(name, safe='')}={quote(value, safe='')}"


@dataclass(frozen=True)
class Injection:
    """What `prepare_upstream` put in: the query to send and where the secrets went."""

    query: str
    secrets: tuple[str, ...]  # injected secret values, redacted from logged bodies
    header_names: frozenset[str]  # lower case
    query_names: frozenset[str]
    token: str | None = None  # the minted token injected (oauth2, customToken), if any


def strip_caller_credential(credential: CredentialView, headers: Headers, raw_query: str) -> str:
    """Remove the caller's credential and hop-by-hop headers in place; the query without it."""
    drop_headers, drop_query = caller_credential_names(credential)
    strip_headers(headers, drop_headers)
    return "&".join(filtered_query(raw_query, drop_query))


@dataclass(frozen=True)
class InjectionPlan:
    """What every request through one proxy gets; fixed for a configuration snapshot."""

    headers: tuple[tuple[str, str], ...]  # additional headers, then the credential's (it wins)
    query: tuple[str, ...]  # encoded `name=value` items to append
    secrets: tuple[str, ...]
    header_names: frozenset[str]
    query_names: frozenset[str]


def plan_injection(proxy: ProxyView) -> InjectionPlan:
    """Work out the proxy's additions and target credential once (`ProxyView.injection_plan`).

    A minted token (oauth2, customToken) is no part of the plan: it is added
    per request (`inject_target_credential`), as it changes when it expires.
    """
    credential = proxy.target_credential
    inject_headers, inject_query = (
        ({}, []) if mints_token(credential) else target_credential_parts(credential)
    )
    headers = {**proxy.additional_headers, **inject_headers}
    return InjectionPlan(
        headers=tuple(headers.items()),
        query=(
            *(encode_pair(k, v) for k, v in proxy.additional_query_params.items()),
            *(encode_pair(k, v) for k, v in inject_query),
        ),
        secrets=(*inject_headers.values(), *(value for _, value in inject_query)),
        header_names=frozenset(name.lower() for name in inject_headers),
        query_names=frozenset(name for name, _ in inject_query),
    )


def inject_target_credential(
    proxy: ProxyView, headers: Headers, query: str, token: str | None = None
) -> Injection:
    """Add the proxy's additional headers and query parameters and the target credential.

    `headers` is changed in place; the query to send comes back with what was injected.
    `token` is the minted token of an oauth2 / customToken credential (required for them).
    """
    plan = proxy.injection_plan
    for name, value in plan.headers:
        headers[name] = value
    items = [item for item in query.split("&") if item] if query else []
    credential = proxy.target_credential
    if not mints_token(credential):
        return Injection(
            query="&".join((*items, *plan.query)),
            secrets=plan.secrets,
            header_names=plan.header_names,
            query_names=plan.query_names,
        )
    if token is None:
        raise ValueError(f"target credential {credential.id} needs a minted token")
    token_headers, token_query = minted_token_parts(credential, token)
    for name, value in token_headers.items():
        headers[name] = value  # after the additional headers: the credential wins
    return Injection(
        query="&".join((*items, *plan.query, *(encode_pair(k, v) for k, v in token_query))),
        secrets=(*plan.secrets, token, *token_headers.values()),
        header_names=plan.header_names | {name.lower() for name in token_headers},
        query_names=plan.query_names | {name for name, _ in token_query},
        token=token,
    )


def prepare_upstream(
    proxy: ProxyView, headers: Headers, raw_query: str, token: str | None = None
) -> Injection:
    """The caller's credential out, the target's in: both steps of a synchronous request."""
    query = strip_caller_credential(proxy.proxy_credential, headers, raw_query)
    return inject_target_credential(proxy, headers, query, token)


def is_sensitive(name: str) -> bool:
    """A header or query name that looks like it carries a credential (as in the request log)."""
    return SENSITIVE_NAME.search(name) is not None


def shown_headers(headers: Headers, names: Iterable[str] = ()) -> Headers:
    """A copy of `headers` to show: `names` (any case) and credential-looking ones blanked."""
    blank = {name.lower() for name in names}
    redacted = REDACTED.encode()
    return Headers(
        [
            (name, redacted if _blanked(name.decode("latin-1"), blank) else value)
            for name, value in headers.fields
        ]
    )


def shown_query(raw: str, names: Iterable[str] = ()) -> str:
    """`raw` (a query string) with the values of `names` and credential-looking names blanked."""
    blank = set(names)
    items = []
    for item in raw.split("&"):
        raw_name = item.split("=", 1)[0]
        name = unquote_plus(raw_name)
        items.append(
            f"{raw_name}={SHOWN_REDACTED}" if name in blank or is_sensitive(name) else item
        )
    return "&".join(items)


def shown_url(url: str, query_names: Iterable[str] = ()) -> str:
    """`url` as the flow may show it: its query through `shown_query`."""
    head, sep, query = url.partition("?")
    return f"{head}?{shown_query(query, query_names)}" if sep else url


def _blanked(name: str, blank: set[str]) -> bool:
    return name.lower() in blank or is_sensitive(name)


def show_sent(
    request: Request, sent: Headers, injection: Injection | None, url: str | None = None
) -> None:
    """Make the flow show what goes to the target (`sent`, `url`) with every secret blanked.

    mitmweb, flow files and mitmdump's `flow_detail` output show the flow's
    request; the request actually sent is kept apart (`FlowState.upstream`),
    so the flow never holds an injected secret, not even for a moment.
    """
    names = injection.header_names if injection else ()
    request.headers = shown_headers(sent, names)
    if url is not None:
        point_at(request, shown_url(url, injection.query_names if injection else ()))


def show_target_url(request: Request, url: str, injection: Injection | None) -> None:
    """Point what the flow shows at the target `url`, injected query values blanked."""
    point_at(request, shown_url(url, injection.query_names if injection else ()))


def conceal_caller_credential(request: Request, credentials: Iterable[CredentialView]) -> None:
    """Blank, in what the flow shows, wherever the caller's credential may be.

    That is every name `credentials` read a credential from (`Authorization`
    always), and every credential-looking header or query parameter. Called
    as soon as the credential has been read, and again before the flow is shown.
    """
    header_names, query_names = {AUTHORIZATION.lower()}, {AUTHORIZATION}
    for credential in credentials:
        more_headers, more_query = caller_credential_names(credential)
        header_names |= more_headers
        query_names |= more_query
    request.headers = shown_headers(request.headers, header_names)
    path, sep, query = request.path.partition("?")
    if sep:
        request.path = f"{path}?{shown_query(query, query_names)}"
