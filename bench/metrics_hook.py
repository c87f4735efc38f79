#!/usr/bin/env python3
"""What the Prometheus metrics addon costs the event loop per request (issue 19: ~5 µs budget).

    .venv/bin/python bench/metrics_hook.py

Times `Metrics.response` with timeit on mitmproxy test flows that carry a `FlowState` as the
pipeline leaves it: a granted 200 (target timed), a rule's 403, an unreachable 502, a
rate-limit 429 and an unknown proxy's 404. Prints the best of 5 runs per kind, in µs a call.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mitmproxy.test import tflow

from addons.metrics import Metrics
from addons.snapshot import EMPTY
from addons.state import FlowState, attach

CALLS = 200_000
KINDS = (
    (200, "proxy-access-granted", True),
    (403, "proxy-access-denied", True),
    (502, "target-unreachable", True),
    (429, "proxy-access-denied", True),
    (404, "proxy-access-denied", False),  # unknown proxy: no proxy on the state
)


def flow_of(status: int, proxy_code: str, known: bool):
    flow = tflow.tflow(resp=True)
    flow.response.status_code = status
    state = attach(flow, FlowState(snapshot=EMPTY))
    state.proxy = SimpleNamespace(id="prx_0123456789abcdef") if known else None
    state.proxy_code = proxy_code
    if status == 200:
        state.sent_at = state.received_at + 0.0002
        state.target_answered_at = state.sent_at + 0.003
    state.finished_at = state.received_at + 0.004
    return flow


def main() -> None:
    metrics = Metrics(config=None)
    for status, code, known in KINDS:
        flow = flow_of(status, code, known)
        best = min(timeit.repeat(lambda f=flow: metrics.response(f), number=CALLS, repeat=5))
        print(f"{status} {code:22} {best / CALLS * 1e6:5.2f} µs a request")


if __name__ == "__main__":
    main()
