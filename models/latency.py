"""A fixed latency histogram: the same buckets everywhere, so counts merge over any window.

Percentiles cannot be averaged across minutes, processes or proxies; bucket
counts can be added and percentiles read off the sum. The bounds grow by
about 1.5× per bucket, so a percentile is known to within one bucket.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

# Upper bounds in milliseconds; a value equal to a bound falls in that bucket.
# The last bucket (index len(BOUNDS_MS)) holds everything above 60 s.
BOUNDS_MS: tuple[float, ...] = (
    1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 60000,
)  # fmt: skip
OVERFLOW = len(BOUNDS_MS)


def bucket_of(ms: float) -> int:
    """The index of the bucket holding `ms`."""
    return bisect.bisect_left(BOUNDS_MS, ms)


def bucket_label(index: int) -> str:
    """The bucket's upper bound as the API names it: `"150"`, or `"+Inf"` for the last."""
    return "+Inf" if index >= OVERFLOW else f"{BOUNDS_MS[index]:g}"


def bucket_range(index: int) -> tuple[float, float]:
    """The bucket's bounds; the last bucket is read as 60 s to 120 s."""
    low = 0.0 if index == 0 else BOUNDS_MS[index - 1]
    high = BOUNDS_MS[index] if index < OVERFLOW else 2 * BOUNDS_MS[-1]
    return low, high


def percentile(counts: Mapping[int, int], q: float) -> float | None:
    """The `q`-quantile (0..1) of a histogram, interpolated linearly inside its bucket.

    None for an empty histogram. The true value lies in the same bucket.
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            low, high = bucket_range(index)
            return low + (high - low) * max(rank - seen, 0) / count
        seen += count
    return bucket_range(max(counts))[1]
