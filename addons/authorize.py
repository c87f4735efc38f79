"""Stage 3, authorize: the four rule scopes; a denial names the scope and the rule.

Rules see the header values the target will receive. Values that are not
UTF-8 are settled here, after the caller's credential was compared byte for
byte: their invalid bytes become U+FFFD for the rules, the request log and the
target alike. (The upstream client would otherwise drop such bytes silently,
so a deny on `^admin$` could see `adm\ufffdin` while the target got `admin`.)

Rules that read the body see it once it is in (addons/body_first.py runs this
stage in `request` then). On an MCP proxy each JSON-RPC call of the request is
decided on its own (`RequestFacts.for_call`: body checks see that message); any denied call
refuses the whole request with JSON-RPC errors an MCP client understands
(addons/mcp_policy.py), and nothing reaches the target.
"""

from __future__ import annotations

from mitmproxy import http

from addons.failsafe import fail_closed
from addons.mcp_policy import refused_calls, tools_list_filter
from addons.responses import DENIED, answer, answered, proxy_error
from addons.state import FlowState, state_of
from models.rule_engine import Decision, RequestFacts, authorize


def utf8_fields(fields: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """`fields` with every value valid UTF-8 (invalid bytes replaced by U+FFFD)."""
    if all(value.isascii() for _, value in fields):
        return fields
    settled = []
    for name, value in fields:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("utf-8", "replace").encode("utf-8")
        settled.append((name, value))
    return tuple(settled)


SCOPE_FLAGS = {
    "proxyCredential": "proxyCredentialScopeValid",
    "targetCredential": "targetCredentialScopeValid",
    "proxy": "proxyScopeValid",
    "target": "targetScopeValid",
}


class Authorize:
    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = state_of(flow)
        state.caller_fields = utf8_fields(state.caller_fields)
        facts = request_facts(flow, state)
        if state.mcp_calls:
            decisions = [
                authorize(state.proxy.scopes, facts.for_call(call)) for call in state.mcp_calls
            ]
            denied = next((d for d in decisions if not d.allowed), None)
            state.decision = denied or decisions[-1]
            if denied is None:
                state.mark(*SCOPE_FLAGS.values())
                watcher = tools_list_filter(state, facts)
                if watcher is not None:
                    state.watchers.append(watcher)
                return
            self._mark_denied(state, denied)
            answer(flow, refused_calls(state, decisions, denial_message))
            return
        state.decision = decision = authorize(state.proxy.scopes, facts)
        if decision.allowed:
            state.mark(*SCOPE_FLAGS.values())
            return
        self._mark_denied(state, decision)
        answer(
            flow,
            proxy_error(
                403,
                DENIED,
                "FORBIDDEN",
                denial_message(decision),
                {"scope": decision.scope, "ruleId": decision.rule_id},
                state.request_id,
            ),
        )

    @staticmethod
    def _mark_denied(state: FlowState, decision: Decision) -> None:
        state.mark(*(flag for scope, flag in SCOPE_FLAGS.items() if scope != decision.scope))
        state.proxy_code = DENIED


def request_facts(flow: http.HTTPFlow, state: FlowState) -> RequestFacts:
    """What the rules see of this request (headers and query only if some rule reads them)."""
    reads_headers, reads_query = state.proxy.rules_read
    return RequestFacts(
        method=flow.request.method,
        path=state.path,
        headers=state.caller_headers if reads_headers else (),  # as received
        query=state.caller_query if reads_query else (),
        body=state.body,
    )


def denial_message(decision: Decision) -> str:
    """What a denial says: the scope and the rule (or the scope's default effect)."""
    reason = f"rule {decision.rule_id}" if decision.rule_id else "its default effect"
    return f"Denied by the {decision.scope} scope: {reason}"
