"""Adding up a dry run: throughput choice, cost and ETA ranges."""

from __future__ import annotations

import pytest

from batchgate.domain import estimate


def test_a_big_enough_recent_sample_is_measured() -> None:
    rate = estimate.throughput(estimate.RecentWork(40, 4000, 20.0), 150.0)
    assert (rate.tokens_per_second, rate.source) == (200.0, estimate.ThroughputSource.MEASURED)


def test_a_small_sample_falls_back_to_the_configured_rate() -> None:
    rate = estimate.throughput(estimate.RecentWork(3, 300, 1.0), 150.0)
    assert (rate.tokens_per_second, rate.source) == (150.0, estimate.ThroughputSource.CONFIGURED)


def test_the_eta_ranges_from_input_alone_to_queue_plus_max_output() -> None:
    entry = estimate.ModelEstimate("m")
    entry.add(input_tokens=100, max_output_tokens=50, exact=True)
    entry.add(input_tokens=100, max_output_tokens=50, exact=False)
    rate = estimate.Throughput(100.0, estimate.ThroughputSource.CONFIGURED)
    entry.set_eta(rate, queued_ahead=4, tokens_per_queued=25.0)
    assert entry.eta_min_seconds == pytest.approx(2.0)
    assert entry.eta_max_seconds == pytest.approx((100 + 200 + 100) / 100)
    rendered = estimate.render([entry])
    assert rendered["input_tokens_exact"] is False and rendered["request_count"] == 2
