"""The IETF rate-limit headers and the approaching-limit warning of a limited proxy's answers.

Fields as in draft-ietf-httpapi-ratelimit-headers-11 (structured-field lists):

- `RateLimit-Policy: "minute";q=100;w=60, "day";q=1000;w=86400`: every window the
  request counted against, with its quota (`q`) and length in seconds (`w`; a
  calendar month is given the length of the current one).
- `RateLimit: "minute";r=42;t=17`: the window nearest exhaustion (the refusing
  one on a 429), with the units remaining (`r`) and whole seconds to its reset (`t`).
- `requestrocket-proxy-warning: Approaching rate limit threshold`, when a window
  is at 80 % of its limit or more after this request (and on a refusal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from addons.counters import Outcome, WindowCount

POLICY = "RateLimit-Policy"
RATELIMIT = "RateLimit"
WARNING = "requestrocket-proxy-warning"
APPROACHING = "Approaching rate limit threshold"
WARN_AT = (4, 5)  # 80 %


@dataclass(frozen=True)
class LimitCheck:
    """What the limit stage decided for a flow, kept on its state for the respond stage."""

    outcome: Outcome
    clock_at: float  # the counters' clock when the request was counted
    wall_at: float  # time.time() at that moment

    def now(self) -> float:
        """The counters' clock now (it may be shifted in tests)."""
        return self.clock_at + (time.time() - self.wall_at)


def nearest_exhaustion(outcome: Outcome) -> WindowCount:
    """The refusing window, else the one with the least share left (ties: resets last)."""
    if outcome.refused is not None:
        return outcome.refused
    return min(
        outcome.windows,
        key=lambda w: (w.remaining / w.limit.limit if w.limit.limit else 0, -w.resets_at),
    )


def approaching(outcome: Outcome) -> bool:
    share, whole = WARN_AT
    return any(w.used * whole >= w.limit.limit * share for w in outcome.windows)


def ratelimit_headers(check: LimitCheck) -> list[tuple[str, str]]:
    """The headers every answer of a limited proxy gets, granted or refused."""
    outcome = check.outcome
    if not outcome.windows:
        return []
    # A refusal is answered at once, and its `t` must agree with its Retry-After, which was
    # computed when the request was counted (a later clock read can cross a second).
    now = check.clock_at if outcome.refused is not None else check.now()
    policies = ", ".join(
        f'"{w.limit.window.value}";q={w.limit.limit};w={_length(w)}' for w in outcome.windows
    )
    nearest = nearest_exhaustion(outcome)
    current = f'"{nearest.limit.window.value}";r={nearest.remaining};t={nearest.resets_in(now)}'
    headers = [(POLICY, policies), (RATELIMIT, current)]
    if approaching(outcome):
        headers.append((WARNING, APPROACHING))
    return headers


def _length(window: WindowCount) -> int:
    start, end = window.limit.window.bounds(window.resets_at - 1)
    return end - start
