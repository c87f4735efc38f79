"""Meters compiled for matching and extraction, shared by the data plane and the Core API.

Predicates on method, path, headers and query are a rule (models/rule_engine.py)
that must match; body checks read JSON fields of the request body through
models/json_paths.py. A conditional meter counts a request only if every
predicate holds; a meter in mode `all` counts every request of its proxy.

Extraction (response_value meters) reads one number from the target's answer:
- `{"location": "body", "path": "usage.total_tokens"}`: the JSON body's value there;
- `{"location": "header", "name": "x-tokens"}`: the header's value as a decimal number.
On an event-stream answer (SSE, models/sse.py) a body extraction reads its path
in each event's `data` JSON (only events named `event`, when given, e.g.
`message_delta`) and adds each number found as that event passes; an event
without the value (another name, data that is not JSON, the value missing or
null) adds nothing (`Extraction.event_units`, the one reading for streamed and
whole answers alike).
A non-negative integer counts as it is; a non-negative fraction is rounded up
(counters are whole units). A missing, non-numeric, negative or non-finite value,
a path selecting several values, or a body that is not JSON counts 0, and
`extract` says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from models.body_checks import NOT_JSON, BodyCheck, compile_body_checks
from models.json_limits import loads
from models.json_paths import JsonPath, parse_path, select
from models.rule_engine import CompiledRule, RequestFacts, compile_rule
from models.sse import SseEvent
from models.windows import WINDOWS

REQUEST_COUNT = "request_count"
RESPONSE_VALUE = "response_value"
# How a response_value meter's limit refuses a request before it is sent: "reached" once
# the window's count has reached the limit (the answer that crosses it goes through);
# "estimate" also when the average answer counted so far would take it past the limit.
# (A request_count meter always refuses the request that would pass its limit.)
REACHED, ESTIMATE = "reached", "estimate"
LIMIT_MODES = (REACHED, ESTIMATE)


@dataclass(frozen=True)
class Extraction:
    location: str  # body | header
    path: JsonPath | None = None
    header: str | None = None
    event: str | None = None  # body on an event stream: only events of this name

    def extract(
        self, headers: Callable[[str], str | None], document: Any
    ) -> tuple[int, str | None]:
        """The units to add, and why it is 0 when the value was not usable (else None)."""
        if self.location == "header":
            raw = headers(self.header)
            if raw is None:
                return 0, f"header {self.header} missing"
            try:
                value: Any = float(raw.strip())
            except ValueError:
                return 0, f"header {self.header} is not a number"
        else:
            if document is NOT_JSON:
                return 0, "response body is not JSON"
            values = select(document, self.path)
            if not values:
                return 0, f"{self.path} missing in the response body"
            if len(values) > 1:
                return 0, f"{self.path} selects {len(values)} values, not one"
            value = values[0]
        return units(value)

    def event_units(self, event: SseEvent) -> tuple[int, str | None] | None:
        """What one event of an event-stream answer adds: None when it does not carry
        the value (another event name, data not JSON, the value missing or null);
        otherwise the units and why they are 0 (as `extract`)."""
        if self.event is not None and event.event != self.event:
            return None
        try:
            document = loads(event.data)
        except ValueError:
            return None
        values = [v for v in select(document, self.path) if v is not None]
        if not values:
            return None
        if len(values) > 1:
            return 0, f"{self.path} selects {len(values)} values, not one"
        return units(values[0])

    def stream_units(self, events: Iterable[SseEvent]) -> tuple[int, str | None]:
        """The units a whole event-stream answer adds (the sum of its events' values),
        and why it is 0 when no event carried a usable value."""
        total, found, why = 0, False, f"no event carried {self.path}"
        for event in events:
            reading = self.event_units(event)
            if reading is None:
                continue
            value, problem = reading
            if problem is None:
                total, found = total + value, True
            else:
                why = problem
        return (total, None) if found else (0, why)


def units(value: Any) -> tuple[int, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0, "value is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return 0, "value is not a finite number"
    if value < 0:
        return 0, "value is negative"
    return (value if isinstance(value, int) else math.ceil(value)), None


@dataclass(frozen=True)
class CompiledMeter:
    id: str
    name: str
    meter_type: str
    conditional: bool
    rule: CompiledRule | None
    body_checks: tuple[BodyCheck, ...]
    extraction: Extraction | None
    limits: tuple[tuple[str, int], ...]  # (window, limit), in WINDOWS order
    limit_mode: str = REACHED  # response_value meters: see LIMIT_MODES

    @property
    def needs_body(self) -> bool:
        return self.conditional and bool(self.body_checks)

    @property
    def reads_mcp(self) -> bool:
        """Whether its predicates test the JSON-RPC call (MCP proxies)."""
        return self.rule is not None and bool(self.rule.mcp_methods or self.rule.mcp_tools)

    def matches(self, facts: RequestFacts, document: Any = NOT_JSON) -> bool:
        """Whether the request counts; `document` is the parsed JSON body (if needed)."""
        if not self.conditional:
            return True
        if self.rule is not None and not any(self.rule.matches(r) for r in facts.readings()):
            return False
        return all(check.holds(document) for check in self.body_checks)


def compile_predicates(predicates: dict, meter_id: str = "meter") -> CompiledRule | None:
    """The method/path/header/query part as a rule, or None if it checks nothing."""
    keys = ("methods", "pathPattern", "headerChecks", "queryChecks", "mcpMethods", "mcpTools")
    if not any(predicates.get(key) for key in keys):
        return None
    return compile_rule(
        SimpleNamespace(
            id=meter_id,
            effect="allow",
            priority=0,
            methods=predicates.get("methods") or [],
            path_pattern=predicates.get("pathPattern"),
            path_presence=predicates.get("pathPresence") or "present",
            header_checks=predicates.get("headerChecks") or [],
            query_checks=predicates.get("queryChecks") or [],
            regex_flags=predicates.get("regexFlags") or "",
            mcp_methods=predicates.get("mcpMethods") or [],
            mcp_tools=predicates.get("mcpTools") or [],
            mcp_tools_presence=predicates.get("mcpToolsPresence") or "present",
        )
    )


def compile_extraction(extraction: dict | None) -> Extraction | None:
    if not extraction:
        return None
    if extraction.get("location") == "header":
        return Extraction("header", header=extraction["name"].lower())
    return Extraction("body", path=parse_path(extraction["path"]), event=extraction.get("event"))


def compile_meter(meter) -> CompiledMeter:
    """A stored meter (a `models.Meter` or anything with its attributes), ready to use."""
    predicates = dict(meter.predicates or {})
    conditional = meter.mode == "conditional"
    limits = dict(meter.limits or {})
    return CompiledMeter(
        id=meter.id,
        name=meter.name,
        meter_type=meter.meter_type,
        conditional=conditional,
        rule=compile_predicates(predicates, meter.id) if conditional else None,
        body_checks=(
            compile_body_checks(
                predicates.get("bodyChecks") or [], predicates.get("regexFlags") or ""
            )
            if conditional
            else ()
        ),
        extraction=compile_extraction(meter.extraction)
        if meter.meter_type == RESPONSE_VALUE
        else None,
        limits=tuple((w, int(limits[w])) for w in WINDOWS if limits.get(w) is not None),
        limit_mode=getattr(meter, "limit_mode", None) or REACHED,
    )
