"""Worker counters and how the scrape adds them up across processes."""

from __future__ import annotations

from prometheus_client import generate_latest, parser, registry

from batchgate.domain import batch as batch_model
from batchgate.domain import failures
from batchgate.domain.states import RequestState
from batchgate.metrics import scrape
from batchgate.metrics import worker as worker_metrics


def outcome(state: RequestState, **fields: object) -> batch_model.Outcome:
    return batch_model.Outcome(1, 1, "w", state, **fields)  # type: ignore[arg-type]


def test_retry_causes_are_short_bounded_labels() -> None:
    def cause(error_type: failures.ErrorType, status: int | None = None) -> str:
        return worker_metrics.retry_cause(failures.RequestError(error_type, "x", status))

    assert cause(failures.ErrorType.RATE_LIMIT, 429) == "http_429"
    assert cause(failures.ErrorType.TIMEOUT) == "timeout"
    assert cause(failures.ErrorType.API) == "connection"


def test_a_write_fenced_off_counts_as_lost_whatever_it_said() -> None:
    done = outcome(RequestState.SUCCEEDED)
    assert worker_metrics.classify(done, applied=False) is worker_metrics.AttemptOutcome.LOST
    handed = outcome(RequestState.QUEUED, refund_attempt=True)
    assert worker_metrics.classify(handed, True) is worker_metrics.AttemptOutcome.HANDED_BACK


def _worker(succeeded: int, latencies: list[float]) -> worker_metrics.WorkerMetrics:
    counters = worker_metrics.WorkerMetrics()
    for _ in range(succeeded):
        counters.record(
            "m", outcome(RequestState.SUCCEEDED, input_tokens=2, output_tokens=5, cost=0.5), True
        )
    for seconds in latencies:
        counters.observe_call("m", seconds)
    return counters


class _Merged(registry.Collector):
    def __init__(self, *reports: dict[str, object]) -> None:
        self.reports = reports

    def collect(self):  # type: ignore[no-untyped-def]
        return scrape.merge_worker_samples(self.reports)  # type: ignore[arg-type]


def _scraped(*reports: dict[str, object]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The workers' reports merged as the scrape serves them, read back from
    the exposition text: (sample name, sorted labels) -> value."""
    target = registry.CollectorRegistry()
    target.register(_Merged(*reports))
    text = generate_latest(target).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_reports_add_up_counters_and_histogram_buckets() -> None:
    first, second = _worker(3, [0.004, 0.2]), _worker(2, [0.2, 7.0])
    samples = _scraped(first.samples() or {}, second.samples() or {})
    m = (("model", "m"),)
    assert samples[("batchgate_attempts_total", (*m, ("outcome", "succeeded")))] == 5
    assert samples[("batchgate_tokens_total", (("direction", "output"), *m))] == 25
    assert samples[("batchgate_upstream_latency_seconds_count", m)] == 4
    assert samples[("batchgate_upstream_latency_seconds_bucket", (("le", "0.005"), *m))] == 1
    assert samples[("batchgate_upstream_latency_seconds_bucket", (("le", "0.25"), *m))] == 3
    assert samples[("batchgate_upstream_latency_seconds_bucket", (("le", "+Inf"), *m))] == 4


def test_switched_off_counters_report_nothing() -> None:
    counters = worker_metrics.recorder(enabled=False)
    counters.record("m", outcome(RequestState.SUCCEEDED), True)
    assert counters.samples() is None


def test_provider_batch_counters_reach_the_scrape_summed_over_workers() -> None:
    reports = []
    for _ in range(2):
        counters = worker_metrics.WorkerMetrics()
        counters.job_ended("m", "completed", 90.0)
        counters.job_ended("m", "cancelled", None)
        counters.job_refused("m", "token_limit_exceeded")
        counters.upstream_cost("m", "batch", 0.25)
        counters.upstream_cost("m", "realtime", 1.0)
        counters.dropped_cost("m", 0.125)
        reports.append(counters.samples() or {})
    samples = _scraped(*reports)
    m = (("model", "m"),)
    jobs = "batchgate_upstream_jobs_total"
    assert samples[(jobs, (("end_status", "completed"), *m))] == 2
    assert samples[(jobs, (("end_status", "cancelled"), *m))] == 2
    refusals = (*m, ("reason", "token_limit_exceeded"))
    assert samples[("batchgate_upstream_job_refusals_total", refusals)] == 2
    cost = "batchgate_upstream_cost_usd_total"
    assert samples[(cost, (*m, ("path", "batch")))] == 0.5
    assert samples[(cost, (*m, ("path", "realtime")))] == 2.0
    assert samples[("batchgate_upstream_dropped_cost_usd_total", m)] == 0.25
    # Only jobs the provider ran to an end have a turnaround.
    assert samples[("batchgate_upstream_job_turnaround_seconds_count", m)] == 2
    assert samples[("batchgate_upstream_job_turnaround_seconds_sum", m)] == 180.0


def test_a_provider_batch_rows_bill_is_counted_by_the_path_that_served_it() -> None:
    counters = worker_metrics.WorkerMetrics()
    counters.record("pb", outcome(RequestState.SUCCEEDED, cost=0.25, route="batch"), True)
    counters.record("pb", outcome(RequestState.SUCCEEDED, cost=0.5, route="realtime"), True)
    counters.record("pb", outcome(RequestState.SUCCEEDED, cost=1.0, route="realtime"), False)
    counters.record("plain", outcome(RequestState.SUCCEEDED, cost=2.0), True)
    (family,) = [f for f in counters.registry.collect() if f.name == "batchgate_tenant_billed_usd"]
    billed = {
        (s.labels["model"], s.labels["path"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }
    # A write fenced off bills nobody; a model of no provider batch API has no path.
    assert billed == {("pb", "batch"): 0.25, ("pb", "realtime"): 0.5}
