"""The test clock of the limit windows (`portcullis_test_clock_file`, addons/counters.py).

A gateway started with `TestClock.args` takes its windows' time from this host's
clock plus the offset in the clock's file, read on every count: a test moves a
running gateway's clock by writing it, and never waits for a real minute to pass.
"""

from __future__ import annotations

import math
import time
from pathlib import Path


class TestClock:
    __test__ = False  # not a test class

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0.0
        self.path.write_text("0")

    @property
    def args(self) -> tuple[str, ...]:
        """The `run_proxy.py` arguments giving a gateway this clock."""
        return ("--set", f"portcullis_test_clock_file={self.path}")

    def now(self) -> float:
        return time.time() + self.offset

    def shift(self, seconds: float) -> None:
        self.offset += seconds
        self.path.write_text(repr(self.offset))

    def start_of_next_minute(self) -> None:
        """Move to one second into the next minute: a fresh window with 59 s to go."""
        now = self.now()
        self.shift(math.floor(now / 60 + 1) * 60 + 1 - now)
