"""The latency histogram, its percentiles, and telemetry periods."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from models.latency import BOUNDS_MS, OVERFLOW, bucket_label, bucket_of, percentile
from models.periods import period_end, period_start, point_time, skey


def epoch(*parts) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("ms", "bucket"), [(0, 0), (1, 0), (1.01, 1), (150, 13), (150.5, 14), (60000, 28), (1e9, 29)]
)
def test_a_value_falls_in_the_bucket_whose_upper_bound_it_does_not_exceed(ms, bucket):
    assert bucket_of(ms) == bucket
    assert bucket_label(bucket) == ("+Inf" if bucket == OVERFLOW else f"{BOUNDS_MS[bucket]:g}")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.01, 0.5, 0.9, 0.99])
def test_a_percentile_lies_in_the_bucket_of_the_exact_value(seed, q):
    rng = random.Random(seed)
    values = sorted(rng.lognormvariate(3, 1.5) for _ in range(rng.randint(1, 2000)))
    histogram: dict[int, int] = {}
    for value in values:
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    nearest_rank = max(1, math.ceil(round(q * len(values), 9)))
    exact = values[nearest_rank - 1]
    assert bucket_of(percentile(histogram, q)) == bucket_of(exact)


def test_histograms_merge_by_adding_counts():
    first, second = {3: 2, 10: 1}, {10: 1, 20: 4}
    merged = {k: first.get(k, 0) + second.get(k, 0) for k in {*first, *second}}
    assert percentile(merged, 0.5) == percentile({3: 2, 10: 2, 20: 4}, 0.5)
    assert percentile({}, 0.5) is None and percentile({4: 0}, 0.9) is None


@pytest.mark.parametrize(
    ("moment", "resolution", "start", "end", "key"),
    [
        (
            (2025, 9, 10, 2, 31, 7),
            "minute",
            (2025, 9, 10, 2, 31),
            (2025, 9, 10, 2, 32),
            "2025-09-10-02-31",
        ),
        ((2025, 9, 10, 2, 31, 7), "hour", (2025, 9, 10, 2), (2025, 9, 10, 3), "2025-09-10-02"),
        ((2025, 9, 10, 23, 59), "day", (2025, 9, 10), (2025, 9, 11), "2025-09-10"),
        ((2025, 12, 31, 23, 59), "month", (2025, 12, 1), (2026, 1, 1), "2025-12"),
        ((2024, 2, 29, 12), "month", (2024, 2, 1), (2024, 3, 1), "2024-02"),
    ],
)
def test_periods_and_their_seed_keys(moment, resolution, start, end, key):
    begins = period_start(epoch(*moment), resolution)
    assert begins == epoch(*start)
    assert period_end(begins, resolution) == epoch(*end)
    assert skey(begins, resolution) == key


def test_a_metrics_point_is_captured_at_the_end_of_its_ten_second_window():
    assert point_time(epoch(2025, 1, 1, 0, 0, 3)) == epoch(2025, 1, 1, 0, 0, 10)
    assert point_time(epoch(2025, 1, 1, 0, 0, 9) + 0.99) == epoch(2025, 1, 1, 0, 0, 10)
    assert point_time(epoch(2025, 1, 1, 0, 0, 10)) == epoch(2025, 1, 1, 0, 0, 20)
