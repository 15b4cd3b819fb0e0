"""The report's latency histogram: fixed log buckets, percentiles placed inside their bucket."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from monitor.store.histogram import (
    ERROR_BOUND,
    LAST,
    MAX_S,
    MIN_S,
    RATIO,
    LatencyHistogram,
    bucket,
    exact_quantile,
    midpoint,
    within,
)

QUANTILES = (0.5, 0.95, 0.99)


def lognormal(seed: int, n: int, median_s: float = 0.25, p99_s: float = 1.2) -> list[float]:
    """The simulator's default latency shape (lognormal, median 250 ms, p99 1.2 s)."""
    rng = random.Random(seed)
    sigma = math.log(p99_s / median_s) / 2.3263
    return [rng.lognormvariate(math.log(median_s), sigma) for _ in range(n)]


def test_a_lone_sample_reads_as_its_buckets_midpoint() -> None:
    histogram = LatencyHistogram()
    histogram.add(0.8)
    for q in QUANTILES:
        assert histogram.quantile(q) == midpoint(bucket(0.8))
        assert histogram.quantile(q) == pytest.approx(0.8, rel=math.sqrt(RATIO) - 1)


def test_empty_and_edge_buckets() -> None:
    assert LatencyHistogram().quantile(0.5) is None
    histogram = LatencyHistogram()
    histogram.add_many([0.0, MIN_S / 2])
    assert histogram.quantile(0.99) == MIN_S
    slow = LatencyHistogram()
    slow.add_many([MAX_S * 3] * 5)
    assert slow.quantile(0.5) == slow.quantile(0.99) == midpoint(LAST)


@pytest.mark.parametrize("seed", range(20))
def test_every_percentile_stays_within_the_error_bound(seed: int) -> None:
    values = sorted(random.Random(seed).uniform(0.002, 30.0) ** 1.5 / 10 for _ in range(50))
    histogram = LatencyHistogram()
    histogram.add_many(values)
    for q in (0.01, 0.25, *QUANTILES, 1.0):
        exact = exact_quantile(values, q)
        assert exact is not None
        assert histogram.quantile(q) == pytest.approx(exact, rel=ERROR_BOUND)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spread_latencies_read_within_2_percent(seed: int) -> None:
    """On 1,000 lognormal latencies the bucket's midpoint alone was 3-5 % off."""
    values = sorted(lognormal(seed, 1000))
    histogram = LatencyHistogram()
    histogram.add_many(values)
    for q in (0.5, 0.95):
        exact = exact_quantile(values, q)
        assert exact is not None
        assert histogram.quantile(q) == pytest.approx(exact, rel=0.02), q


def test_merged_histograms_read_like_one() -> None:
    values = lognormal(7, 600)
    whole = LatencyHistogram()
    whole.add_many(values)
    merged = LatencyHistogram()
    for part in (values[:100], values[100:350], values[350:]):
        piece = LatencyHistogram()
        piece.add_many(part)
        merged.merge(LatencyHistogram.from_json(piece.to_json()))
    assert [merged.quantile(q) for q in QUANTILES] == [whole.quantile(q) for q in QUANTILES]


def nearest_rank(counts: Counter[int], q: float) -> float:
    """The rank-th sample of the expanded samples, placed inside its bucket."""
    samples = sorted(index for index, count in counts.items() for _ in range(count))
    rank = max(1, math.ceil(q * len(samples)))
    index = samples[rank - 1]
    before = samples.index(index)  # samples in lower buckets
    return within(index, (rank - before - 0.5) / counts[index])


def test_quantiles_read_in_one_pass_are_each_nearest_rank() -> None:
    rng = random.Random(7)
    for _ in range(500):
        counts = Counter(
            {rng.randrange(LAST + 1): rng.randrange(1, 9) for _ in range(rng.randrange(1, 6))}
        )
        qs = [rng.choice([0.0, 0.01, 0.5, 0.95, 0.99, 1.0]) for _ in range(3)]
        expected = tuple(nearest_rank(counts, q) for q in qs)
        assert LatencyHistogram(counts).quantiles(qs) == expected  # in any order of qs
    assert LatencyHistogram().quantiles((0.5, 0.99)) == (None, None)
