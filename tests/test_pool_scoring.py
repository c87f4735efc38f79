"""The pool's score formula and grading rules (pool/scoring.py): pure functions, so these
tests call them directly; the check cycle's tests show them on real proxies and stores."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from pool.checkers.base import Context, Judge, Member, Outcome
from pool.checkers.run import UNJUDGEABLE, judge_reachable
from pool.scoring import (
    DEAD_AFTER_FAILURES,
    DEAD_BACKOFF_CAP_S,
    UPTIME_WINDOW,
    Before,
    grade,
    score,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RECHECK_S = 600
PASSED = [
    Outcome("tcp_connect", 1, True, 5.0, "TCP connect OK"),
    Outcome("http_anonymity", 2, True, 120.0, "ok", "elite", "203.0.113.5", "US"),
    Outcome("https_connect", 3, True, 130.0, "ok"),
]
STAGE2_FAILED = [PASSED[0], Outcome("http_anonymity", 2, False, None, "timed out")]
STAGE1_FAILED = [Outcome("tcp_connect", 1, False, None, "connection refused")]
NEW = Before("unchecked", None, None, 0, 0, 0, None)


def after(before: Before, outcomes, now=NOW) -> tuple[Before, dict]:
    values = grade(before, outcomes, now, RECHECK_S)
    following = Before(
        values["status"],
        values["avg_latency_ms"],
        values["uptime_pct"],
        values["checks_total"],
        values["checks_passed"],
        values["consecutive_failures"],
        values["dead_since"],
    )
    return following, values


def history(*cycles) -> tuple[Before, dict]:
    state, values = NEW, {}
    for outcomes in cycles:
        state, values = after(state, outcomes)
    return state, values


def test_score_is_bounded_and_ordered():
    grid = itertools.product(
        (None, -5.0, 0.0, 50.0, 100.0, 150.0),
        (None, -1.0, 0.0, 100.0, 1e6),
        (0, 1, 5, 100),
        (-10.0, 0.0, 3600.0, 1e9),
    )
    for uptime, latency, failures, age in grid:
        assert 0.0 <= score(uptime, latency, failures, age) <= 1.0
    assert score(100, 100, 0) > score(100, 1000, 0) > score(100, 5000, 0)  # faster is better
    assert score(100, 200, 0, age_s=0) > score(100, 200, 0, age_s=3 * 3600)  # fresh beats stale
    assert score(100, 200, 0, age_s=3 * 3600) > score(100, 200, 0, age_s=48 * 3600)
    assert score(100, 200, 0) > score(90, 200, 0)  # more uptime is better
    assert score(0, 10, 0) == 0.0


def test_a_failure_at_least_halves_the_score_and_a_pass_restores_it():
    good, graded = history(*[PASSED] * 20)
    top = graded["score"]
    assert graded["status"] == "active" and 0.8 < top <= 1.0
    for failures in range(1, DEAD_AFTER_FAILURES + 1):
        good, failed = after(good, STAGE2_FAILED)
        assert failed["score"] <= top / 2**failures
    assert failed["status"] == "dead"
    _, recovered = after(good, PASSED)
    assert recovered["status"] == "active" and recovered["consecutive_failures"] == 0
    assert failed["score"] < recovered["score"] < top  # rises, the lost uptime still counts


def test_status_transitions_and_recheck_times():
    epoch = NOW.timestamp()
    # Stage 1 failing: dead at once, even when active before.
    _, values = history(STAGE1_FAILED)
    assert (values["status"], values["dead_since"], values["score"]) == ("dead", NOW, 0.0)
    _, values = history(PASSED, STAGE1_FAILED)
    assert values["status"] == "dead"
    # Never active and failing a later stage (a faker): dead.
    _, values = history(STAGE2_FAILED)
    assert values["status"] == "dead"
    # Active failing a later stage: still active, retried sooner, dead after N in a row.
    state, values = history(PASSED)
    assert values["next_check_at"] == epoch + RECHECK_S
    assert (values["anonymity"], values["exit_ip"], values["country"]) == (
        "elite",
        "203.0.113.5",
        "US",
    )
    state, values = after(state, STAGE2_FAILED)
    assert values["status"] == "active" and values["next_check_at"] < epoch + RECHECK_S
    assert "anonymity" not in values  # a failed cycle leaves the last grades as they are
    for _ in range(DEAD_AFTER_FAILURES - 1):
        state, values = after(state, STAGE2_FAILED)
    assert values["status"] == "dead"
    # Dead: exponential backoff, capped; dead_since kept from the first dead cycle.
    state, values = history(STAGE1_FAILED)
    waits = [values["next_check_at"] - epoch]
    for hour in range(1, 12):
        state, values = after(state, STAGE1_FAILED, NOW + timedelta(hours=hour))
        waits.append(values["next_check_at"] - (NOW + timedelta(hours=hour)).timestamp())
        assert values["dead_since"] == NOW
    assert waits[:3] == [RECHECK_S, 2 * RECHECK_S, 4 * RECHECK_S]
    assert max(waits) == DEAD_BACKOFF_CAP_S and waits == sorted(waits)


def test_uptime_is_the_mean_then_a_sliding_window():
    _, values = history(PASSED, STAGE2_FAILED, PASSED, PASSED)
    assert values["uptime_pct"] == 75.0
    assert values["checks_total"] == 4 and values["checks_passed"] == 3
    # After a long good run, recent failures show within about one window.
    state, _ = history(*[PASSED] * 500)
    for _ in range(UPTIME_WINDOW):
        state, values = after(state, STAGE1_FAILED)
    assert values["uptime_pct"] < 40


def test_a_member_the_judge_cannot_reach_keeps_its_grades():
    """A judge on loopback cannot judge members elsewhere (they would reach their own
    loopback): such a cycle is inconclusive, not a failure (a pool is never marked dead for
    its judge's sake)."""
    judge = Judge.parse("http://127.0.0.1:5000/pool/judge")
    on_loopback = Context(judge, frozenset(), 1.0, judge_on_loopback=True)
    public = Context(judge, frozenset(), 1.0)
    for address in ("127.0.0.9", "::ffff:127.0.0.1", "::1"):
        assert judge_reachable(Member("m", "h", 1, "http", address=address), on_loopback)
    for address in ("203.0.113.7", "10.0.0.1", "2001:db8::1"):
        member = Member("m", "h", 1, "http", address=address)
        assert not judge_reachable(member, on_loopback) and judge_reachable(member, public)

    state, _ = history(*[PASSED] * 5)
    unjudged = [PASSED[0], Outcome("judge", 2, False, None, UNJUDGEABLE, inconclusive=True)]
    values = grade(state, unjudged, NOW, RECHECK_S)
    assert values == {"next_check_at": NOW.timestamp() + RECHECK_S}


def test_latency_is_an_ewma_of_passed_cycles():
    _, first = history(PASSED)
    assert first["avg_latency_ms"] == 120.0  # the judge request through the proxy
    slower = [PASSED[0], Outcome("http_anonymity", 2, True, 1120.0, "ok", "elite", None, None)]
    state, values = history(PASSED, slower)
    assert 120.0 < values["avg_latency_ms"] < 1120.0
    _, failed = after(state, STAGE1_FAILED)
    assert failed["avg_latency_ms"] == values["avg_latency_ms"]  # failures don't count
