"""Grading a proxy from one check cycle: score, latency, uptime, status, next check.

The score (in [0, 1]):

    score = success × speed × penalty × freshness
    success   = uptime_pct / 100                   (recent share of passed cycles)
    speed     = 1 / (1 + avg_latency_ms / 1000)    (100 ms → 0.91, 1 s → 0.5; 0.5 when unknown)
    penalty   = 0.5 ** consecutive_failures        (each failed cycle in a row halves it)
    freshness = 0.5 ** (age_s / 6 h)               (age of the last check; 1 when just checked)

So one failed cycle at least halves a score at once, and a pass restores the penalty.
`uptime_pct` is the mean of the cycles' outcomes (100 passed, 0 failed) over the first
UPTIME_WINDOW cycles, then an exponentially weighted mean with weight 1/UPTIME_WINDOW
(about the last UPTIME_WINDOW cycles). `avg_latency_ms` is an EWMA (LATENCY_ALPHA) of passed
cycles' latencies (the judge request through the proxy; the TCP connect when no judge
request ran).

Status: a cycle passes when every applicable checker passed. Passed → `active`, checked
again after `pool_recheck_seconds`. Failed → `dead` when stage 1 failed, when the proxy was
never active, or after DEAD_AFTER_FAILURES failed cycles in a row; an active proxy failing a
later stage once or twice stays `active` (its score cut) and is retried sooner. Dead proxies
are re-checked with exponential backoff (`pool_recheck_seconds` × 2^(failures−1), at most
DEAD_BACKOFF_CAP_S) and removed after `pool_dead_remove_hours` dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pool.checkers.base import Outcome

LATENCY_SCALE_MS = 1000.0
UNKNOWN_SPEED = 0.5
FAILURE_FACTOR = 0.5
FRESH_HALF_LIFE_S = 6 * 3600.0
UPTIME_WINDOW = 50
LATENCY_ALPHA = 0.3
DEAD_AFTER_FAILURES = 3
RETRY_AFTER_FAILURE_S = 60
DEAD_BACKOFF_CAP_S = 6 * 3600


def score(
    uptime_pct: float | None,
    avg_latency_ms: float | None,
    consecutive_failures: int,
    age_s: float = 0.0,
) -> float:
    """The composite score (module docstring), in [0, 1]."""
    success = min(max((uptime_pct or 0.0) / 100.0, 0.0), 1.0)
    speed = (
        UNKNOWN_SPEED
        if avg_latency_ms is None
        else 1.0 / (1.0 + max(avg_latency_ms, 0.0) / LATENCY_SCALE_MS)
    )
    penalty = FAILURE_FACTOR ** max(consecutive_failures, 0)
    freshness = 0.5 ** (max(age_s, 0.0) / FRESH_HALF_LIFE_S)
    return min(max(success * speed * penalty * freshness, 0.0), 1.0)


def ewma(old: float | None, sample: float, alpha: float) -> float:
    return sample if old is None else old + alpha * (sample - old)


def next_uptime(old: float | None, cycles_before: int, up: bool) -> float:
    """uptime_pct after one more cycle (exact mean first, then a sliding EWMA)."""
    weight = 1.0 / min(cycles_before + 1, UPTIME_WINDOW)
    return ewma(old, 100.0 if up else 0.0, weight) if old is not None else (100.0 if up else 0.0)


def dead_backoff_s(consecutive_failures: int, recheck_seconds: int) -> float:
    exponent = min(max(consecutive_failures - 1, 0), 30)
    return float(min(recheck_seconds * 2**exponent, max(DEAD_BACKOFF_CAP_S, recheck_seconds)))


@dataclass(frozen=True)
class Before:
    """What the grade of a cycle needs of the proxy's record."""

    status: str
    avg_latency_ms: float | None
    uptime_pct: float | None
    checks_total: int
    checks_passed: int
    consecutive_failures: int
    dead_since: datetime | None


def cycle_latency(outcomes: list[Outcome]) -> float | None:
    """The cycle's latency: the judge request's when one passed, else the TCP connect's."""
    latencies = {o.stage: o.latency_ms for o in outcomes if o.passed and o.latency_ms is not None}
    return latencies.get(2, latencies.get(1))


def grade(before: Before, outcomes: list[Outcome], now: datetime, recheck_seconds: int) -> dict:
    """The proxy's new columns after a cycle with `outcomes` (PoolProxy attribute names);
    `next_check_at` is in seconds after `now`'s epoch. An inconclusive cycle (the member
    could not be judged) changes nothing but the next check time."""
    if any(o.inconclusive for o in outcomes):
        return {"next_check_at": now.timestamp() + recheck_seconds}
    passed = bool(outcomes) and all(o.passed for o in outcomes)
    stage1_failed = any(o.stage == 1 and not o.passed for o in outcomes) or not outcomes
    failures = 0 if passed else before.consecutive_failures + 1
    latency = cycle_latency(outcomes) if passed else None
    avg_latency = (
        ewma(before.avg_latency_ms, latency, LATENCY_ALPHA)
        if latency is not None
        else before.avg_latency_ms
    )
    uptime = next_uptime(before.uptime_pct, before.checks_total, passed)
    epoch = now.timestamp()
    if passed:
        status, dead_since, wait = "active", None, float(recheck_seconds)
    elif stage1_failed or before.status != "active" or failures >= DEAD_AFTER_FAILURES:
        status, dead_since = "dead", before.dead_since or now
        wait = dead_backoff_s(failures, recheck_seconds)
    else:
        status, dead_since = "active", None
        wait = float(min(recheck_seconds, RETRY_AFTER_FAILURE_S * 2 ** (failures - 1)))
    values = {
        "status": status,
        "score": round(score(uptime, avg_latency, failures), 6),
        "avg_latency_ms": avg_latency,
        "uptime_pct": uptime,
        "checks_total": before.checks_total + 1,
        "checks_passed": before.checks_passed + (1 if passed else 0),
        "consecutive_failures": failures,
        "dead_since": dead_since,
        "last_checked_at": now,
        "next_check_at": epoch + wait,
    }
    graded = next((o for o in outcomes if o.passed and o.anonymity), None)
    if graded is not None:
        values.update(anonymity=graded.anonymity, exit_ip=graded.exit_ip, country=graded.country)
    return values
