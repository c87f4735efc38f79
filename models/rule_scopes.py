"""The four rule scopes of a stored proxy, compiled for the rule engine.

The data plane's snapshot and the admin's rule explainer build scopes here,
so both decide with the same rules in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models import Credential, Proxy, Rule, Target
from models.rule_engine import Scope, build_scope


def credential_scope(credential: Credential, rules: Sequence[Rule]) -> Scope:
    return build_scope(
        f"{credential.credential_type}Credential", credential.default_rule_effect, rules
    )


def target_scope(target: Target, rules: Sequence[Rule]) -> Scope:
    return build_scope("target", target.default_rule_effect, rules)


def proxy_scope(proxy: Proxy, rules: Sequence[Rule]) -> Scope:
    return build_scope("proxy", proxy.default_rule_effect, rules)


def proxy_scopes(proxy: Proxy, rules: Mapping[str, Sequence[Rule]]) -> tuple[Scope, ...]:
    """A stored proxy's four scopes, in `ProxyView.scopes` order (for the rule explainer)."""
    return (
        credential_scope(proxy.proxy_credential, rules.get(proxy.proxy_credential_id, ())),
        credential_scope(proxy.target_credential, rules.get(proxy.target_credential_id, ())),
        proxy_scope(proxy, rules.get(proxy.id, ())),
        target_scope(proxy.target, rules.get(proxy.target_id, ())),
    )
