"""What goes to the target: the caller's credential out, the target credential in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_plus

from mitmproxy.http import Headers, Request

from models.credential_parts import AUTHORIZATION, target_credential_parts

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


REDACTED = "[REDACTED]"


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
    listed = {n.strip().lower() for n in headers.get_all("connection") for n in n.split(",")}
    for name in {*names, *HOP_BY_HOP, *listed} - {""}:
        headers.pop(name, None)


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
    """Work out the proxy's additions and target credential once (`ProxyView.injection_plan`)."""
    inject_headers, inject_query = target_credential_parts(proxy.target_credential)
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


def inject_target_credential(proxy: ProxyView, headers: Headers, query: str) -> Injection:
    """Add the proxy's additional headers and query parameters and the target credential.

    `headers` is changed in place; the query to send comes back with what was injected.
    """
    plan = proxy.injection_plan
    for name, value in plan.headers:
        headers[name] = value
    items = [item for item in query.split("&") if item] if query else []
    return Injection(
        query="&".join((*items, *plan.query)),
        secrets=plan.secrets,
        header_names=plan.header_names,
        query_names=plan.query_names,
    )


def prepare_upstream(proxy: ProxyView, headers: Headers, raw_query: str) -> Injection:
    """The caller's credential out, the target's in: both steps of a synchronous request."""
    query = strip_caller_credential(proxy.proxy_credential, headers, raw_query)
    return inject_target_credential(proxy, headers, query)


def show_redacted(request: Request, injection: Injection | None, url: str | None = None) -> None:
    """Blank the injected credential in what the flow shows; point it at `url` if given.

    The flow's request is what mitmweb and `flow_detail` print; the request
    actually sent is kept apart (`FlowState.upstream`).
    """
    if url is not None:
        request.url = url
    if injection is None:
        return
    if url is not None and injection.query_names:
        query = request.query
        for name in injection.query_names & set(query.keys()):
            query[name] = REDACTED
    for name in injection.header_names:
        if name in request.headers:
            request.headers[name] = REDACTED


def conceal_caller_credential(request: Request, credential: CredentialView | None) -> None:
    """Blank where the caller's credential may be (Authorization when the proxy is unknown)."""
    headers, query_names = (
        caller_credential_names(credential)
        if credential
        else ({AUTHORIZATION.lower()}, {AUTHORIZATION})
    )
    for name in headers:
        if name in request.headers:
            request.headers[name] = REDACTED
    if "?" not in request.path:
        return
    query = request.query
    for name in query_names & set(query.keys()):
        query[name] = REDACTED
