"""The data plane's view of the configuration: immutable, built in the background.

Every request is served from one `Snapshot`, so no stage queries the store.
A new snapshot replaces the old one in a single reference swap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from addons.egress import UnusableEgress
from models import Credential, CredentialGrant, Proxy, Rule, Target, current_config_version
from models.credit import BudgetView, Price, budget_views, proxy_prices
from models.crypto import KeyRing
from models.egress import Egress, open_egress
from models.meter import Meter
from models.meter_engine import CompiledMeter, compile_meter
from models.payload_filter import FilterStep, filter_chains
from models.rule_engine import Scope, policy_reads_body
from models.rule_scopes import credential_scope, proxy_scope, target_scope

if TYPE_CHECKING:
    from addons.injection import InjectionPlan

log = logging.getLogger("portcullis.snapshot")


@dataclass(frozen=True)
class GrantView:
    """An oauth2 connection as the snapshot saw it (`credential_grants`), without its token:
    the refresh token is read, in a worker thread, only when refreshing (addons/tokens/)."""

    status: str  # pending, connected, needs_reconnect
    generation: int


@dataclass(frozen=True)
class CredentialView:
    id: str
    client_id: str
    credential_type: str
    auth_type: str
    active: bool
    expires_at: datetime | None
    settings: dict
    secret: dict = field(repr=False)
    scope: Scope
    grant: GrantView | None = None  # oauth2 authorization_code / refresh_token only

    @cached_property
    def fingerprint(self) -> str:
        """The id and a digest of the settings and secret: tokens minted for a credential
        that has changed since are never reused (addons/tokens/)."""
        material = json.dumps([self.auth_type, self.settings, self.secret], sort_keys=True)
        return f"{self.id}:{hashlib.sha256(material.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class TargetView:
    id: str
    base_url: SplitResult
    active: bool
    scope: Scope
    # How requests leave for it (models/egress.py): None = directly; the router picks the proxy.
    egress: Egress | UnusableEgress | None = None


@dataclass(frozen=True)
class ProxyView:
    id: str
    client_id: str
    created_by: str | None
    alias: str | None
    region: str
    active: bool
    proxy_credential: CredentialView
    target: TargetView
    target_credential: CredentialView
    scope: Scope
    additional_headers: dict
    additional_query_params: dict
    additional_data: dict
    max_requests_per_minute: int
    max_requests_per_day: int
    meters: tuple[CompiledMeter, ...] = ()  # active usage meters (addons/meters.py)
    filters: tuple[FilterStep, ...] = ()  # payload filters, in order (addons/filters.py)
    # The largest target answer passed on: None the gateway's default, 0 no limit (issue 18).
    max_response_bytes: int | None = None
    mcp: bool = False  # the target is an MCP server: JSON-RPC bodies are parsed (issue 18)

    @cached_property
    def reads_body(self) -> bool:
        """Whether the proxy's policy needs the request body before anything is checked:
        some rule of its four scopes checks the body or an MCP call, or it is an MCP proxy."""
        return policy_reads_body(self.mcp, self.scopes)

    @cached_property
    def injection_plan(self) -> InjectionPlan:
        """The target credential and additions every request gets; raises UnsupportedInjection."""
        from addons.injection import plan_injection  # it imports this module's types

        return plan_injection(self)

    @cached_property
    def rules_read(self) -> tuple[bool, bool]:
        """Whether any of the four scopes looks at (headers, query)."""
        rules = [rule for scope in self.scopes for rule in scope.rules]
        return (
            any(rule.header_checks for rule in rules),
            any(rule.query_checks for rule in rules),
        )

    @cached_property
    def meters_read(self) -> tuple[bool, bool]:
        """Whether any conditional meter's predicates look at (headers, query)."""
        rules = [meter.rule for meter in self.meters if meter.rule is not None]
        return (
            any(rule.header_checks for rule in rules),
            any(rule.query_checks for rule in rules),
        )

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """The four rule scopes, in the order decisions are reported."""
        return (
            self.proxy_credential.scope,
            self.target_credential.scope,
            self.scope,
            self.target.scope,
        )


@dataclass(frozen=True)
class Snapshot:
    version: int
    proxies: dict[str, ProxyView]
    aliases: dict[str, tuple[ProxyView, ...]]  # an alias is unique per client only
    budgets: dict[str, BudgetView] = field(default_factory=dict)  # by client id
    prices: dict[str, Price] = field(default_factory=dict)  # by proxy id, priced ones only

    def candidates(self, reference: str) -> tuple[ProxyView, ...]:
        """The proxies `reference` (an id or an alias) may name."""
        proxy = self.proxies.get(reference)
        return (proxy,) if proxy is not None else self.aliases.get(reference, ())


EMPTY = Snapshot(version=-1, proxies={}, aliases={})


class ChangedWhileReading(Exception):
    """The store changed between the reads of one build (SQLite reads each statement
    afresh); the version moved too, so the next poll builds again."""


def build_snapshot(session: Session, key_ring: KeyRing) -> Snapshot:
    """Read the whole configuration once and compile it. Runs off the event loop."""
    version = current_config_version(session)
    rules: dict[str, list[Rule]] = defaultdict(list)
    for rule in session.scalars(select(Rule)):
        rules[rule.parent_id].append(rule)
    meters: dict[str, list[CompiledMeter]] = defaultdict(list)
    for meter in session.scalars(select(Meter).where(Meter.active).order_by(Meter.id)):
        meters[meter.proxy_id].append(compile_meter(meter))
    proxies = session.scalars(
        select(Proxy).options(
            selectinload(Proxy.proxy_credential),
            selectinload(Proxy.target_credential),
            selectinload(Proxy.target),
        )
    ).all()
    filters = filter_chains(session, proxies)
    grants = {
        grant.credential_id: GrantView(grant.status, grant.generation or 0)
        for grant in session.scalars(select(CredentialGrant))
    }
    credentials: dict[str, CredentialView] = {}
    targets: dict[str, TargetView] = {}
    views: dict[str, ProxyView] = {}
    aliases: dict[str, list[ProxyView]] = defaultdict(list)
    for proxy in proxies:
        if None in (proxy.target, proxy.proxy_credential, proxy.target_credential):
            raise ChangedWhileReading(f"proxy {proxy.id} lost a referenced record meanwhile")
        view = ProxyView(
            id=proxy.id,
            client_id=proxy.client_id,
            created_by=proxy.created_by,
            alias=proxy.alias,
            region=proxy.region,
            active=proxy.active,
            proxy_credential=_credential(proxy.proxy_credential, key_ring, rules, credentials, {}),
            target=_target(proxy.target, key_ring, rules, targets),
            target_credential=_credential(
                proxy.target_credential, key_ring, rules, credentials, grants
            ),
            scope=proxy_scope(proxy, rules[proxy.id]),
            additional_headers=dict(proxy.additional_headers or {}),
            additional_query_params=dict(proxy.additional_query_params or {}),
            additional_data=dict(proxy.additional_data or {}),
            max_requests_per_minute=proxy.max_requests_per_minute,
            max_requests_per_day=proxy.max_requests_per_day,
            meters=tuple(meters[proxy.id]),
            filters=filters.get(proxy.id, ()),
            max_response_bytes=proxy.max_response_bytes,
            mcp=proxy.mcp,
        )
        views[proxy.id] = view
        if proxy.alias:
            aliases[proxy.alias].append(view)
    return Snapshot(
        version,
        views,
        {alias: tuple(v) for alias, v in aliases.items()},
        budgets=budget_views(session),
        prices=proxy_prices(session),
    )


def _credential(
    credential: Credential, key_ring: KeyRing, rules: dict, cache: dict, grants: dict
) -> CredentialView:
    if credential.id not in cache:
        cache[credential.id] = CredentialView(
            id=credential.id,
            client_id=credential.client_id,
            credential_type=credential.credential_type,
            auth_type=credential.auth_type,
            active=credential.active,
            expires_at=credential.expires_at,
            settings=dict(credential.settings or {}),
            secret=credential.open_secret(key_ring),
            scope=credential_scope(credential, rules[credential.id]),
            grant=grants.get(credential.id),
        )
    return cache[credential.id]


def _target(target: Target, key_ring: KeyRing, rules: dict, cache: dict) -> TargetView:
    if target.id not in cache:
        cache[target.id] = TargetView(
            id=target.id,
            base_url=urlsplit(target.base_url),
            active=target.active,
            scope=target_scope(target, rules[target.id]),
            egress=_egress(target, key_ring),
        )
    return cache[target.id]


def _egress(target: Target, key_ring: KeyRing) -> Egress | UnusableEgress | None:
    """The target's egress, its proxy credentials opened; one that cannot be read makes the
    target's requests fail (502), never go out directly, and leaves the rest of the snapshot."""
    try:
        return open_egress(target, key_ring)
    except Exception as exc:
        log.error("target %s: its egress cannot be read (%s)", target.id, type(exc).__name__)
        return UnusableEgress("the target's egress setting cannot be read")
