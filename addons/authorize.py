"""Stage 3, authorize: the four rule scopes; a denial names the scope and the rule.

Rules see the header values the target will receive. Values that are not
UTF-8 are settled here, after the caller's credential was compared byte for
byte: their invalid bytes become U+FFFD for the rules, the request log and the
target alike. (The upstream client would otherwise drop such bytes silently,
so a deny on `^admin$` could see `adm\ufffdin` while the target got `admin`.)
"""

from __future__ import annotations

from mitmproxy import http

from addons.failsafe import fail_closed
from addons.responses import DENIED, answer, answered, proxy_error
from addons.state import state_of
from models.rule_engine import RequestFacts, authorize


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
        reads_headers, reads_query = state.proxy.rules_read
        facts = RequestFacts(
            method=flow.request.method,
            path=state.path,
            headers=state.caller_headers if reads_headers else (),  # as received
            query=state.caller_query if reads_query else (),
        )
        state.decision = decision = authorize(state.proxy.scopes, facts)
        if decision.allowed:
            state.mark(*SCOPE_FLAGS.values())
            return
        state.mark(*(flag for scope, flag in SCOPE_FLAGS.items() if scope != decision.scope))
        state.proxy_code = DENIED
        reason = f"rule {decision.rule_id}" if decision.rule_id else "its default effect"
        answer(
            flow,
            proxy_error(
                403,
                DENIED,
                "FORBIDDEN",
                f"Denied by the {decision.scope} scope: {reason}",
                {"scope": decision.scope, "ruleId": decision.rule_id},
                state.request_id,
            ),
        )
