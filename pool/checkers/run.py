"""Checking one member in stages, and many at once with a bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from models.ssrf_policy import effective
from pool.checkers import CHECKERS, Checker
from pool.checkers.base import Context, Judge, Member, Outcome
from pool.checkers.checks import FAILURES, failure_detail
from pool.checkers.connect import close, start_judge_tls
from pool.checkers.grading import PROXY_HEADERS, Address, genuine_answer, parse_address
from pool.checkers.http1 import exchange
from pool.judge import new_nonce

log = logging.getLogger("portcullis.pool.checks")


async def run_checker(checker: Checker, member: Member, ctx: Context) -> Outcome:
    """One check under the per-check timeout; every failure is an outcome, never raised."""
    try:
        return await asyncio.wait_for(checker.run(member, ctx), ctx.timeout_s)
    except (*FAILURES, TimeoutError) as exc:
        return Outcome(checker.name, checker.stage, False, None, failure_detail(exc))
    except Exception as exc:  # a checker's bug must not stop the cycle: a failed check
        log.exception("checker %s failed on %s", checker.name, member.id)
        return Outcome(checker.name, checker.stage, False, None, f"checker error: {exc!r}")


async def check_member(member: Member, ctx: Context) -> list[Outcome]:
    """Every applicable checker, stage by stage; a stage runs only if the one before passed."""
    outcomes: list[Outcome] = []
    stages = sorted({c.stage for c in CHECKERS})
    for stage in stages:
        if stage > 1 and not judge_reachable(member, ctx):
            outcomes.append(Outcome("judge", stage, False, None, UNJUDGEABLE, inconclusive=True))
            break
        applicable = [c for c in CHECKERS if c.stage == stage and c.applies_to(member.protocol)]
        stage_outcomes = [await run_checker(c, member, ctx) for c in applicable]
        outcomes += stage_outcomes
        if not all(o.passed for o in stage_outcomes):
            break
    return outcomes


UNJUDGEABLE = (
    "not judged: the judge is on loopback and this member is not (set "
    "PORTCULLIS_POOL_JUDGE_URL or PORTCULLIS_PUBLIC_URL to a judge members can reach)"
)


def judge_reachable(member: Member, ctx: Context) -> bool:
    """Whether the member can reach the judge at all: a loopback judge only from loopback."""
    if not ctx.judge_on_loopback:
        return True
    address = parse_address(member.address)
    return address is not None and effective(address).is_loopback


async def check_members(
    members: Iterable[Member], ctx: Context, concurrency: int
) -> dict[str, list[Outcome]]:
    """Check `members` concurrently, at most `concurrency` at once: {member id: outcomes}."""
    bound = asyncio.Semaphore(concurrency)

    async def one(member: Member) -> tuple[str, list[Outcome]]:
        async with bound:
            return member.id, await check_member(member, ctx)

    return dict(await asyncio.gather(*(one(m) for m in members)))


async def ask_directly(judge: Judge, timeout_s: float) -> tuple[Address | None, frozenset[str]]:
    """Ask the judge directly (no proxy): the checker's own address as the judge sees it, and
    the proxy headers the judge sees anyway (its baseline)."""
    nonce = new_nonce()

    async def ask():
        reader, writer = await asyncio.open_connection(judge.host, judge.port)
        try:
            await start_judge_tls(writer, judge)
            return await exchange(reader, writer, "GET", judge.target(nonce), judge.authority)
        finally:
            await close(writer)

    body = genuine_answer(await asyncio.wait_for(ask(), timeout_s), nonce)
    names = {str(name).lower() for name in body["headers"]}
    return parse_address(body.get("remote_addr")), frozenset(names & PROXY_HEADERS)
