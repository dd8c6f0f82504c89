"""Latency percentiles read from the counters' nine buckets (no database)."""

from __future__ import annotations

import pytest

from extractor.models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS
from extractor.selectors.stats import LATENCY_LABELS, LatencyPercentile, latency_percentile

SLOTS = len(LATENCY_COLUMNS)


def counts(**at: int) -> list[int]:
    """Bucket counts by index: counts(b0=3, b4=1)."""
    slots = [0] * SLOTS
    for name, value in at.items():
        slots[int(name[1:])] = value
    return slots


def test_the_labels_are_the_bucket_upper_bounds_and_the_open_top():
    assert len(LATENCY_LABELS) == SLOTS == len(LATENCY_BOUNDS_MS) + 1
    assert LATENCY_LABELS[0] == "≤ 0.1 ms"
    assert LATENCY_LABELS[4] == "≤ 1 s"
    assert LATENCY_LABELS[-1] == "> 30 s"


@pytest.mark.parametrize("percent", [50, 95])
def test_no_calls_have_no_percentile(percent):
    assert latency_percentile([0] * SLOTS, percent) is None


@pytest.mark.parametrize("index", range(SLOTS))
def test_calls_all_in_one_bucket_put_every_percentile_there(index):
    slots = counts(**{f"b{index}": 7})

    assert latency_percentile(slots, 50) == LatencyPercentile(index, LATENCY_LABELS[index])
    assert latency_percentile(slots, 95) == latency_percentile(slots, 50)


def test_the_open_top_bucket_reads_as_over_its_lower_bound():
    slow = latency_percentile(counts(b4=90, b8=10), 95)

    assert slow == LatencyPercentile(8, "> 30 s")
    assert latency_percentile(counts(b4=90, b8=10), 50) == LatencyPercentile(4, "≤ 1 s")


def test_nearest_rank_at_the_edge_of_a_bucket():
    # 95 of 100 calls within 1 s: p95 is "≤ 1 s"; one call fewer and it moves up.
    assert latency_percentile(counts(b4=95, b5=5), 95) == LatencyPercentile(4, "≤ 1 s")
    assert latency_percentile(counts(b4=94, b5=6), 95) == LatencyPercentile(5, "≤ 3 s")
    # One call: it is every percentile. Two: p50 is the faster one.
    assert latency_percentile(counts(b2=1), 50) == LatencyPercentile(2, "≤ 10 ms")
    assert latency_percentile(counts(b1=1, b6=1), 50) == LatencyPercentile(1, "≤ 1 ms")
    assert latency_percentile(counts(b1=1, b6=1), 95) == LatencyPercentile(6, "≤ 10 s")


def test_a_wrong_number_of_buckets_or_percent_is_refused():
    with pytest.raises(ValueError, match="9 bucket counts"):
        latency_percentile([1, 2, 3], 50)
    with pytest.raises(ValueError, match="percent"):
        latency_percentile(counts(b0=1), 0)
