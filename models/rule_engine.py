"""Rule evaluation, shared by the data plane and anything that explains a decision.

Four independent scopes (proxy credential, target credential, proxy, target)
must all allow a request. Within a scope every matching rule counts: any
matching deny denies; otherwise a matching allow allows; with no match the
scope's default effect decides. A decision names the scope and the rule.

A path that carries `;` parameters has two readings (`models.target_url.
path_readings`): literal, as most servers read it, and with each segment's
parameters removed, as servlet containers read it. A scope allows such a
request only if it allows both readings; a denial in either names its rule.

Header and query values reach the rules as text; bytes that are not UTF-8
(which mitmproxy hands over as lone surrogates) are read as U+FFFD, so a
pattern can still match the rest of the value and matching never fails.

Rules may also read the request body (issue 18): `body_checks` test JSON fields
(models/body_checks.py) of `facts.body.document`, `body_pattern` searches
`facts.body.text`; without a body the document is NOT_JSON and the text "".
On a proxy marked `mcp`, `mcp_methods`/`mcp_tools` test the JSON-RPC call being
decided (`facts.mcp`); a rule with them never matches a request that is no call.
A call without a tool (not `tools/call`) has none of `mcp_tools`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from models.body_checks import NOT_JSON, BodyCheck, compile_body_checks
from models.enums import RuleEffect
from models.mcp import McpCall
from models.patterns import compile_pattern
from models.target_url import path_readings

SCOPE_ORDER = ("proxyCredential", "targetCredential", "proxy", "target")


@dataclass(frozen=True)
class BodyFacts:
    """The request body as body checks see it (read only for proxies whose rules need it)."""

    document: Any  # the parsed JSON; models.body_checks.NOT_JSON when absent or not JSON
    text: str  # the body as text (invalid UTF-8 as U+FFFD), for `bodyPattern`
    # `bodyPattern` verdicts on `text`, by pattern: shared by every reading of the path and
    # every call of a batch (`for_call`), so a body is scanned once per pattern, not once
    # per call (a 1 MiB batch holds thousands of calls).
    found: dict = field(default_factory=dict, compare=False, repr=False)

    def has(self, pattern) -> bool:
        """Whether `pattern` is found in the text (each pattern searched once per body)."""
        verdict = self.found.get(pattern)
        if verdict is None:
            verdict = self.found[pattern] = bool(pattern.search(self.text))
        return verdict


@dataclass(frozen=True)
class RequestFacts:
    """What rules look at. `path` is the path below the proxy, e.g. `/v1/customers`.

    `body` is None when no rule reads the body; `mcp` is the JSON-RPC call being
    decided (one element of a batch at a time) on a proxy marked `mcp`, else None.
    """

    method: str
    path: str
    headers: Sequence[tuple[str, str]]
    query: Sequence[tuple[str, str]]
    body: BodyFacts | None = None
    mcp: McpCall | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", matchable(self.method))
        object.__setattr__(self, "headers", matchable_items(self.headers))
        object.__setattr__(self, "query", matchable_items(self.query))

    def for_call(self, call: McpCall) -> RequestFacts:
        """These facts deciding one JSON-RPC call: `mcp` is the call, body checks see its
        message (one element of a batch) and `bodyPattern` still the whole body's text."""
        if self.body is None:
            return replace(self, mcp=call, body=BodyFacts(document=call.document, text=""))
        body = BodyFacts(document=call.document, text=self.body.text, found=self.body.found)
        return replace(self, mcp=call, body=body)

    def readings(self) -> tuple[RequestFacts, ...]:
        """These facts once per reading of the path (one unless it carries `;` parameters)."""
        paths = path_readings(self.path)
        return (self,) if len(paths) == 1 else tuple(replace(self, path=p) for p in paths)


def matchable(text: str) -> str:
    """`text` as RE2 can match it: each lone surrogate (a byte that was not UTF-8) is U+FFFD."""
    if text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def matchable_items(items: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
    if all(name.isascii() and value.isascii() for name, value in items):
        return items
    return tuple((matchable(name), matchable(value)) for name, value in items)


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
    # Issue 18: request body checks, a raw-body pattern, and MCP method/tool checks.
    body_checks: tuple[BodyCheck, ...] = ()
    body_pattern: object | None = None
    body_pattern_present: bool = True
    mcp_methods: frozenset[str] = frozenset()
    mcp_tools: frozenset[str] = frozenset()
    mcp_tools_present: bool = True

    @property
    def reads_body(self) -> bool:
        """Whether matching needs the request body (or the MCP call parsed from it)."""
        return bool(
            self.body_checks or self.body_pattern is not None or self.mcp_methods or self.mcp_tools
        )

    def matches(self, facts: RequestFacts) -> bool:
        if self.methods and facts.method.upper() not in self.methods:
            return False
        if self.path is not None and bool(self.path.search(facts.path)) != self.path_present:
            return False
        if not (
            all(c.holds(facts.headers) for c in self.header_checks)
            and all(c.holds(facts.query) for c in self.query_checks)
        ):
            return False
        if (self.mcp_methods or self.mcp_tools) and not self._mcp_matches(facts.mcp):
            return False
        if self.body_checks or self.body_pattern is not None:
            return self._body_matches(facts.body)
        return True

    def _mcp_matches(self, call: McpCall | None) -> bool:
        """The call's method is one of mcp_methods and its tool is (not) one of mcp_tools."""
        if call is None:
            return False
        if self.mcp_methods and call.method not in self.mcp_methods:
            return False
        return not self.mcp_tools or (call.tool in self.mcp_tools) == self.mcp_tools_present

    def _body_matches(self, body: BodyFacts | None) -> bool:
        """Body checks on the JSON document and the pattern on the text (no body: "", not JSON)."""
        if self.body_pattern is not None:
            found = (
                body.has(self.body_pattern) if body is not None else self.body_pattern.search("")
            )
            if found != self.body_pattern_present:
                return False
        document = body.document if body is not None else NOT_JSON
        return all(check.holds(document) for check in self.body_checks)


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
        """The decision for every reading of the path: the first denial, else the literal one."""
        verdicts = [self._decide(reading) for reading in facts.readings()]
        return next((v for v in verdicts if not v.allowed), verdicts[0])

    def matching(self, facts: RequestFacts) -> list[CompiledRule]:
        """The rules that match any reading of the request, highest priority first."""
        readings = facts.readings()
        return [rule for rule in self.rules if any(rule.matches(r) for r in readings)]

    def _decide(self, facts: RequestFacts) -> Decision:
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
        **_body_and_mcp_fields(rule, flags),
    )


def _body_and_mcp_fields(rule, flags: str) -> dict[str, Any]:
    """The issue-18 fields of a compiled rule; absent attributes (e.g. meter predicates that
    check no body) compile to the defaults, which cost nothing when matching."""
    body_pattern = getattr(rule, "body_pattern", None)
    return {
        "body_checks": compile_body_checks(getattr(rule, "body_checks", None) or [], flags),
        "body_pattern": compile_pattern(body_pattern, flags) if body_pattern is not None else None,
        "body_pattern_present": getattr(rule, "body_pattern_presence", None) != "absent",
        "mcp_methods": frozenset(getattr(rule, "mcp_methods", None) or ()),
        "mcp_tools": frozenset(getattr(rule, "mcp_tools", None) or ()),
        "mcp_tools_present": getattr(rule, "mcp_tools_presence", None) != "absent",
    }


def build_scope(name: str, default_effect: str, rules: Iterable) -> Scope:
    compiled = sorted((compile_rule(r) for r in rules), key=lambda r: (-r.priority, r.id))
    return Scope(name, RuleEffect(default_effect), tuple(compiled))


def policy_reads_body(mcp: bool, scopes: Iterable[Scope]) -> bool:
    """Whether a proxy's policy needs the request body before anything is decided: it is an
    MCP proxy (its calls are parsed), or a rule of its scopes checks the body or a call."""
    return mcp or any(rule.reads_body for scope in scopes for rule in scope.rules)


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
