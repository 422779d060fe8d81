"""Adding up a dry run: throughput choice, cost and ETA ranges."""

from __future__ import annotations

import pytest

from batchgate.domain import estimate
from batchgate.domain import upstream_jobs as uj


def test_a_big_enough_recent_sample_is_measured() -> None:
    rate = estimate.throughput(estimate.RecentWork(40, 4000, 20.0), 150.0)
    assert (rate.tokens_per_second, rate.source) == (200.0, estimate.ThroughputSource.MEASURED)


def test_a_small_sample_falls_back_to_the_configured_rate() -> None:
    rate = estimate.throughput(estimate.RecentWork(3, 300, 1.0), 150.0)
    assert (rate.tokens_per_second, rate.source) == (150.0, estimate.ThroughputSource.CONFIGURED)


def test_a_measured_eta_is_the_batch_at_the_measured_request_rate() -> None:
    # 32 requests over 8 busy seconds, 8 in their calls at once: 4 per second.
    recent = estimate.RecentWork(32, 3200, 8.0, output_tokens=32 * 50, request_seconds=64.0)
    rate = estimate.throughput(recent, 150.0)
    assert (rate.requests_per_second, rate.concurrency) == (4.0, 8.0)
    assert rate.output_tokens_per_request == 50.0

    def eta(requests: int, max_tokens: int = 64) -> float:
        return estimate.measured_seconds(rate, requests, requests * max_tokens)

    assert eta(2) == pytest.approx(0.5)
    assert eta(64) == pytest.approx(16.0)
    assert eta(8, max_tokens=25) == pytest.approx(1.0)  # half the output each


def test_a_measured_eta_ranges_from_the_batch_alone_to_after_the_queue() -> None:
    recent = estimate.RecentWork(32, 3200, 8.0, output_tokens=32 * 50, request_seconds=64.0)
    entry = estimate.ModelEstimate("m")
    for _ in range(16):
        entry.add(input_tokens=10, max_output_tokens=100, exact=True)
    entry.set_eta(estimate.throughput(recent, 150.0), queued_ahead=32, tokens_per_queued=0)
    assert entry.eta_min_seconds == pytest.approx(4.0)  # 16 at 4 a second
    assert entry.eta_max_seconds == pytest.approx(4.0 + 8.0)  # and the 32 ahead
    assert estimate.render([entry])["models"][0]["eta"]["measured_concurrency"] == 8.0


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


def _job(submitted: float | None, ended: float, status: uj.EndStatus) -> uj.UpstreamJob:
    return uj.UpstreamJob(
        id=f"job_{submitted}_{ended}_{status}",
        model="m",
        kind="openai_batch",
        endpoint="/v1/chat/completions",
        state=uj.JobState.ENDED,
        created_at=0.0,
        submitted_at=submitted,
        ended_at=ended,
        end_status=status,
    )


def test_job_turnaround_is_the_median_of_the_jobs_the_provider_completed() -> None:
    jobs = [
        _job(100.0, 200.0, uj.EndStatus.COMPLETED),
        _job(0.0, 300.0, uj.EndStatus.COMPLETED),
        _job(0.0, 900.0, uj.EndStatus.COMPLETED),
        # Cancelled early for the fallback, refused at create, never done.
        _job(0.0, 1.0, uj.EndStatus.CANCELLED),
        _job(None, 2.0, uj.EndStatus.FAILED),
        _job(0.0, 86_400.0, uj.EndStatus.EXPIRED),
    ]
    assert uj.measured_turnaround(jobs) == (300.0, 3)
    assert uj.measured_turnaround(jobs[3:]) == (0.0, 0)


def test_a_provider_batch_eta_is_the_turnaround_up_to_a_flush_wait_later() -> None:
    entry = estimate.ModelEstimate("pb", requests=3)
    entry.set_job_eta(estimate.JobTurnaround(600.0, 4, flush_after_seconds=60.0))
    eta = estimate.render([entry])["models"][0]["eta"]
    assert eta == {
        "min_seconds": 600.0,
        "max_seconds": 660.0,
        "throughput_source": "job_turnaround",
        "turnaround_seconds": 600.0,
        "sample_jobs": 4,
        "flush_after_seconds": 60.0,
    }


def test_a_provider_batch_model_with_no_ended_job_says_its_eta_is_unknown() -> None:
    entry = estimate.ModelEstimate("pb", requests=3)
    entry.set_job_eta(estimate.JobTurnaround(None, 0, flush_after_seconds=60.0))
    eta = estimate.render([entry])["models"][0]["eta"]
    assert (eta["min_seconds"], eta["max_seconds"], eta["sample_jobs"]) == (None, None, 0)
    assert eta["throughput_source"] == "job_turnaround"
