"""The checker registry: `CHECKERS`, in the order they run (stage, then priority).

Each checker has a `name`, a `stage`, a `priority` (lower runs first within a stage), the
`protocols` it applies to, and `run(member, ctx) -> Outcome` (a coroutine). A stage runs only
for members that passed every applicable checker of the stage before (`pool.checkers.run`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pool.checkers import checks
from pool.checkers.base import Context, Member, Outcome

HTTP = frozenset({"http", "https"})
SOCKS = frozenset({"socks4", "socks5"})
ALL = HTTP | SOCKS


@dataclass(frozen=True)
class Checker:
    name: str
    stage: int
    priority: int
    protocols: frozenset[str]
    run: Callable[[Member, Context], Awaitable[Outcome]]

    def applies_to(self, protocol: str) -> bool:
        return protocol in self.protocols


CHECKERS: list[Checker] = sorted(
    [
        Checker("tcp_connect", 1, 0, ALL, checks.tcp_connect),
        Checker("http_anonymity", 2, 0, HTTP, checks.http_anonymity),
        Checker("socks_anonymity", 2, 0, SOCKS, checks.socks_anonymity),
        Checker("https_connect", 3, 0, HTTP, checks.https_connect),
    ],
    key=lambda checker: (checker.stage, checker.priority),
)
