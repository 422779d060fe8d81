"""A worker process's own counters, kept with prometheus-client in a private
registry and reported as plain samples on its heartbeat row (so the API can
sum them over every worker, on every host)."""

from __future__ import annotations

import enum
from typing import Any, Protocol

import prometheus_client

from batchgate.domain import batch as batch_model
from batchgate.domain import failures
from batchgate.domain.states import RequestState

# Upstream calls take from milliseconds (a local fake, a cache hit) to
# minutes (long generations on a busy server).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A provider's batch job takes from seconds (a small job on a quiet upstream)
# to its whole 24 h window.
TURNAROUND_BUCKETS = (
    1,
    10,
    60,
    300,
    900,
    1800,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    86400,
)


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    RETRIED = "retried"
    # Drained before the call started: handed back without using an attempt.
    HANDED_BACK = "handed_back"
    # The write was fenced off: the request was cancelled, expired or
    # reclaimed while this worker ran it.
    LOST = "lost"


def retry_cause(error: failures.RequestError | None) -> str:
    """A short, bounded label for why an attempt will be retried."""
    if error is None:
        return "unknown"
    if error.status_code is not None:
        return f"http_{error.status_code}"
    if error.type is failures.ErrorType.API:
        return "connection"
    return error.type.value.removesuffix("_error")


def classify(outcome: batch_model.Outcome, applied: bool) -> AttemptOutcome:
    if not applied:
        return AttemptOutcome.LOST
    if outcome.state is RequestState.SUCCEEDED:
        return AttemptOutcome.SUCCEEDED
    if outcome.state is RequestState.QUEUED:
        return AttemptOutcome.RETRIED if outcome.error is not None else AttemptOutcome.HANDED_BACK
    return AttemptOutcome.ERRORED


class Recorder(Protocol):
    def observe_call(self, model: str, seconds: float) -> None: ...
    def record(self, model: str, outcome: batch_model.Outcome, applied: bool) -> None: ...
    def samples(self) -> dict[str, Any] | None: ...

    # Provider batch APIs (worker/upstream_jobs/).
    def job_ended(self, model: str, end_status: str, turnaround: float | None) -> None: ...
    def job_refused(self, model: str, reason: str) -> None: ...
    def upstream_cost(self, model: str, path: str, usd: float) -> None: ...
    def dropped_cost(self, model: str, usd: float) -> None: ...


class WorkerMetrics:
    """Counters of one worker process. Cheap to update (a dict lookup and an
    add under a lock); read only when the worker reports (``samples``)."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.attempts = prometheus_client.Counter(
            "batchgate_attempts",
            "Attempts at requests, by model and what came of them.",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.retries = prometheus_client.Counter(
            "batchgate_retries",
            "Attempts that will be retried, by model and cause (http_<status>, timeout, "
            "connection, ...).",
            ["model", "cause"],
            registry=self.registry,
        )
        self.latency = prometheus_client.Histogram(
            "batchgate_upstream_latency_seconds",
            "Time an upstream call took, whatever it returned.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = prometheus_client.Counter(
            "batchgate_tokens",
            "Tokens of succeeded requests, by model and direction (input, output).",
            ["model", "direction"],
            registry=self.registry,
        )
        self.cost = prometheus_client.Counter(
            "batchgate_cost_usd",
            "Cost at the batch price of succeeded requests, in USD.",
            ["model"],
            registry=self.registry,
        )
        self._upstream_families()

        # labels() builds a key and takes the metric's lock on every call;
        # the children are kept here so the per-request path is a dict hit.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _upstream_families(self) -> None:
        """What provider batch APIs cost the operator, against what the
        tenants are billed (``batchgate_cost_usd``)."""
        self.upstream_jobs = prometheus_client.Counter(
            "batchgate_upstream_jobs",
            "Upstream jobs (provider batches) that ended, by model and how.",
            ["model", "end_status"],
            registry=self.registry,
        )
        self.upstream_refusals = prometheus_client.Counter(
            "batchgate_upstream_job_refusals",
            "Upstream jobs the provider refused as too large (smaller ones follow), by reason.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.upstream_cost_usd = prometheus_client.Counter(
            "batchgate_upstream_cost_usd",
            "What the operator pays the provider, in USD, by path: batch (the batch price) "
            "or realtime (the deadline fallback, at the list price).",
            ["model", "path"],
            registry=self.registry,
        )
        # Beside the operator's cost by path: what the tenants were billed
        # for each path (the batch price either way), so the two compare
        # series by series.
        self.tenant_billed = prometheus_client.Counter(
            "batchgate_tenant_billed_usd",
            "What tenants are billed, in USD, for the succeeded requests of provider-batch "
            "models, by path: the batch price on either path.",
            ["model", "path"],
            registry=self.registry,
        )
        self.upstream_dropped = prometheus_client.Counter(
            "batchgate_upstream_dropped_cost_usd",
            "Upstream results paid for but dropped (their request was cancelled or had "
            "fallen back), in USD: the operator's loss.",
            ["model"],
            registry=self.registry,
        )
        self.turnaround = prometheus_client.Histogram(
            "batchgate_upstream_job_turnaround_seconds",
            "From an upstream job's submission to the provider ending it.",
            ["model"],
            buckets=TURNAROUND_BUCKETS,
            registry=self.registry,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        # The metrics live as long as this object, so their ids are stable.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_call(self, model: str, seconds: float) -> None:
        self._child(self.latency, model).observe(seconds)

    def record(self, model: str, outcome: batch_model.Outcome, applied: bool) -> None:
        kind = classify(outcome, applied)
        self._child(self.attempts, model, kind.value).inc()
        if kind is AttemptOutcome.RETRIED:
            self._child(self.retries, model, retry_cause(outcome.error)).inc()
        elif kind is AttemptOutcome.SUCCEEDED:
            self._child(self.tokens, model, "input").inc(outcome.input_tokens)
            self._child(self.tokens, model, "output").inc(outcome.output_tokens)
            self._child(self.cost, model).inc(outcome.cost)
            if outcome.route is not None:  # a provider-batch model's row
                self._child(self.tenant_billed, model, outcome.route).inc(outcome.cost)

    def job_ended(self, model: str, end_status: str, turnaround: float | None) -> None:
        self._child(self.upstream_jobs, model, end_status).inc()
        if turnaround is not None:
            self._child(self.turnaround, model).observe(max(turnaround, 0.0))

    def job_refused(self, model: str, reason: str) -> None:
        self._child(self.upstream_refusals, model, reason).inc()

    def upstream_cost(self, model: str, path: str, usd: float) -> None:
        self._child(self.upstream_cost_usd, model, path).inc(usd)

    def dropped_cost(self, model: str, usd: float) -> None:
        self._child(self.upstream_dropped, model).inc(usd)

    def samples(self) -> dict[str, Any] | None:
        """``{family: {"type", "help", "samples": [[name, labels, value], ...]}}``
        (JSON-ready; ``_created`` timestamps left out: they do not add up)."""
        report: dict[str, Any] = {}
        for family in self.registry.collect():
            report[family.name] = {
                "type": family.type,
                "help": family.documentation,
                "samples": [
                    [sample.name, sample.labels, sample.value]
                    for sample in family.samples
                    if not sample.name.endswith("_created")
                ],
            }
        return report


class Disabled:
    """Metrics off (``[metrics] enabled = false``): nothing counted."""

    def observe_call(self, model: str, seconds: float) -> None:
        pass

    def record(self, model: str, outcome: batch_model.Outcome, applied: bool) -> None:
        pass

    def samples(self) -> dict[str, Any] | None:
        return None

    def job_ended(self, model: str, end_status: str, turnaround: float | None) -> None:
        pass

    def job_refused(self, model: str, reason: str) -> None:
        pass

    def upstream_cost(self, model: str, path: str, usd: float) -> None:
        pass

    def dropped_cost(self, model: str, usd: float) -> None:
        pass


def recorder(*, enabled: bool) -> Recorder:
    return WorkerMetrics() if enabled else Disabled()
