"""Rule evaluation, shared by the data plane and anything that explains a decision.

Four independent scopes (proxy credential, target credential, proxy, target)
must all allow a request. Within a scope every matching rule counts: any
matching deny denies; otherwise a matching allow allows; with no match the
scope's default effect decides. A decision names the scope and the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.enums import RuleEffect
from models.patterns import compile_pattern

SCOPE_ORDER = ("proxyCredential", "targetCredential", "proxy", "target")


@dataclass(frozen=True)
class RequestFacts:
    """What rules look at. `path` is the path below the proxy, e.g. `/v1/customers`."""

    method: str
    path: str
    headers: Sequence[tuple[str, str]]
    query: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class CompiledCheck:
    """A header or query check: some item whose name (and value) match, or none that does."""

    name: object
    value: object | None
    present: bool

    def holds(self, items: Iterable[tuple[str, str]]) -> bool:
        found = any(
            self.name.search(key) and (self.value is None or self.value.search(value))
            for key, value in items
        )
        return found == self.present


@dataclass(frozen=True)
class CompiledRule:
    id: str
    effect: RuleEffect
    priority: int
    methods: frozenset[str]
    path: object | None
    path_present: bool
    header_checks: tuple[CompiledCheck, ...]
    query_checks: tuple[CompiledCheck, ...]

    def matches(self, facts: RequestFacts) -> bool:
        if self.methods and facts.method.upper() not in self.methods:
            return False
        if self.path is not None and bool(self.path.search(facts.path)) != self.path_present:
            return False
        return all(c.holds(facts.headers) for c in self.header_checks) and all(
            c.holds(facts.query) for c in self.query_checks
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scope: str | None
    rule_id: str | None  # None: the scope's default effect decided


@dataclass(frozen=True)
class Scope:
    name: str
    default_effect: RuleEffect
    rules: tuple[CompiledRule, ...]  # highest priority first

    def decide(self, facts: RequestFacts) -> Decision:
        matched = [rule for rule in self.rules if rule.matches(facts)]
        for rule in matched:
            if rule.effect is RuleEffect.DENY:
                return Decision(False, self.name, rule.id)
        if matched:
            return Decision(True, self.name, matched[0].id)
        return Decision(self.default_effect is RuleEffect.ALLOW, self.name, None)


def compile_rule(rule) -> CompiledRule:
    """A stored rule (a `models.Rule` or anything with its attributes), ready to match.

    Header names are matched ignoring case, as HTTP does.
    """
    flags = rule.regex_flags or ""

    def checks(items: list[dict], name_flags: str) -> tuple[CompiledCheck, ...]:
        return tuple(
            CompiledCheck(
                name=compile_pattern(item["namePattern"], name_flags),
                value=(
                    compile_pattern(item["valuePattern"], flags)
                    if item.get("valuePattern") is not None
                    else None
                ),
                present=item.get("presence", "present") == "present",
            )
            for item in items or []
        )

    return CompiledRule(
        id=rule.id,
        effect=RuleEffect(rule.effect),
        priority=rule.priority,
        methods=frozenset(m.upper() for m in rule.methods or []),
        path=compile_pattern(rule.path_pattern, flags) if rule.path_pattern is not None else None,
        path_present=rule.path_presence != "absent",
        header_checks=checks(rule.header_checks, flags + "i"),
        query_checks=checks(rule.query_checks, flags),
    )


def build_scope(name: str, default_effect: str, rules: Iterable) -> Scope:
    compiled = sorted((compile_rule(r) for r in rules), key=lambda r: (-r.priority, r.id))
    return Scope(name, RuleEffect(default_effect), tuple(compiled))


def authorize(scopes: Sequence[Scope], facts: RequestFacts) -> Decision:
    """The first denying scope's decision, or an allow naming the last deciding rule."""
    allowed = Decision(True, None, None)
    for scope in scopes:
        decision = scope.decide(facts)
        if not decision.allowed:
            return decision
        if decision.rule_id is not None:
            allowed = decision
    return allowed
