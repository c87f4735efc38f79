"""A histogram counted with plain ints (a few hundred ns an observation), read by a scraper.

The owner's thread observes; another thread may read `snapshot()` at any time: it copies
the counts in one C-level call each, so a reading is consistent to within the observations
made meanwhile (Prometheus tolerates that: bucket counts only ever grow).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

# seconds: from 100 µs (the gateway's own overhead) to a minute (a slow target)
SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


@dataclass(frozen=True)
class HistogramReading:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket (not cumulative); the last one is +Inf
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound, observations at or below it), +Inf last."""
        buckets, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets


class Histogram:
    """Observations in fixed buckets; `observe` from one thread, `snapshot` from any."""

    def __init__(self, bounds: tuple[float, ...] = SECONDS_BUCKETS):
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sums = [0.0]  # a list: the reader copies it in one call, like the counts

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.bounds, value)] += 1
        self._sums[0] += value

    def snapshot(self) -> HistogramReading:
        return HistogramReading(self.bounds, tuple(self._counts), self._sums[0])
