"""What a batch would cost and take, worked out before it is stored (a dry
run): request count, input tokens, a cost range at the batch price, and an
ETA for a model on the embedded engine (from its measured throughput) or on a
provider's batch API (from its jobs' measured turnaround). Pure: the service
counts tokens and reads the throughput; this adds them up."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from batchgate.domain import errors


class ThroughputSource(enum.StrEnum):
    MEASURED = "measured"  # from the model's requests that finished recently
    CONFIGURED = "configured"  # [estimate] default_tokens_per_second
    # A provider-batch model: its recent upstream jobs' turnaround.
    JOB_TURNAROUND = "job_turnaround"


@dataclasses.dataclass(frozen=True)
class RecentWork:
    """A model's requests that succeeded in a recent window: how many, their
    tokens (input + output), the time the model was busy with them (each
    batch's span from first start to last end, summed), their output tokens,
    and the seconds each spent in its backend call, summed."""

    requests: int = 0
    tokens: int = 0
    busy_seconds: float = 0.0
    output_tokens: int = 0
    request_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Throughput:
    tokens_per_second: float
    source: ThroughputSource
    sample_requests: int = 0
    # Measured only: requests finished per busy second, how many were in
    # their backend call at once on average while it was measured, and the
    # output tokens a request wrote on average.
    requests_per_second: float = 0.0
    concurrency: float = 0.0
    output_tokens_per_request: float = 0.0


@dataclasses.dataclass(frozen=True)
class JobTurnaround:
    """A provider-batch model's measured speed: the median seconds from
    submit to end of its recent upstream jobs (``sample_jobs`` of them; None
    while none has ended), and the longest a queued row waits for its job to
    be sent (``flush_after_seconds``; less when a job fills up first)."""

    seconds: float | None
    sample_jobs: int
    flush_after_seconds: float


# Fewer finished requests than this say too little about a model's speed.
MIN_SAMPLE_REQUESTS = 20


def throughput(recent: RecentWork, default_tokens_per_second: float) -> Throughput:
    """The measured rate when the sample is big enough, else the configured one."""
    busy = recent.busy_seconds
    if recent.requests >= MIN_SAMPLE_REQUESTS and busy > 0 and recent.tokens > 0:
        return Throughput(
            recent.tokens / busy,
            ThroughputSource.MEASURED,
            recent.requests,
            requests_per_second=recent.requests / busy,
            concurrency=max(recent.request_seconds / busy, 1.0),
            output_tokens_per_request=recent.output_tokens / recent.requests,
        )
    return Throughput(default_tokens_per_second, ThroughputSource.CONFIGURED)


def measured_seconds(rate: Throughput, requests: int, max_output_tokens: int) -> float:
    """How long ``requests`` take at the rate measured, in requests per busy
    second. The embedded engine on a CPU is compute-bound: decoding more
    sequences together makes each step slower by about as much as it adds,
    so its request rate barely depends on how many run at once
    (benchmarks/estimate.py: 5 requests ran at 0.25/s where 24 had run at
    0.19/s), and the measured rate is used for a batch of any size. Requests
    whose max_tokens is below the measured output per request finish that
    much sooner."""
    if requests <= 0 or rate.requests_per_second <= 0:
        return 0.0
    seconds = requests / rate.requests_per_second
    capped = max_output_tokens / requests  # the most each request may write
    if 0 < capped < rate.output_tokens_per_request:
        seconds *= capped / rate.output_tokens_per_request
    return seconds


@dataclasses.dataclass
class ModelEstimate:
    """One model's share of a batch."""

    model: str
    requests: int = 0
    input_tokens: int = 0
    max_output_tokens: int = 0
    exact: bool = True  # every input token count came from the model's own tokenizer
    configured: bool = True
    cost_min: float = 0.0
    cost_max: float = 0.0
    eta_min_seconds: float | None = None
    eta_max_seconds: float | None = None
    throughput: Throughput | None = None
    queued_ahead: int = 0
    turnaround: JobTurnaround | None = None

    def add(self, input_tokens: int, max_output_tokens: int, exact: bool) -> None:
        self.requests += 1
        self.input_tokens += input_tokens
        self.max_output_tokens += max_output_tokens
        self.exact = self.exact and exact

    def set_job_eta(self, turnaround: JobTurnaround) -> None:
        """The ETA on a provider's batch API: a job's turnaround once the
        rows are sent, at best at once (a full job is sent at once), at
        worst after waiting ``flush_after_seconds`` for the job to fill.
        However large the batch, its jobs run side by side upstream."""
        self.turnaround = turnaround
        if turnaround.seconds is None:
            return  # nothing measured: the ETA says so with null times
        self.eta_min_seconds = turnaround.seconds
        self.eta_max_seconds = turnaround.seconds + turnaround.flush_after_seconds

    def set_eta(self, rate: Throughput, queued_ahead: int, tokens_per_queued: float) -> None:
        """The ETA at ``rate``. Measured (see ``measured_seconds``): at best
        the batch alone; at worst after the ``queued_ahead`` requests too
        (fair claiming serves a new batch beside the queue, so it rarely
        waits for all of them). Configured, with nothing measured yet: from
        the batch's input alone to the queue plus every request writing its
        max_tokens, at the configured tokens per second."""
        if rate.tokens_per_second <= 0:
            return
        self.throughput = rate
        self.queued_ahead = queued_ahead
        if rate.source is ThroughputSource.MEASURED and rate.requests_per_second > 0:
            alone = measured_seconds(rate, self.requests, self.max_output_tokens)
            average_output = self.max_output_tokens / max(self.requests, 1)
            ahead = measured_seconds(rate, queued_ahead, round(average_output * queued_ahead))
            self.eta_min_seconds = alone
            self.eta_max_seconds = alone + ahead
            return
        ahead_tokens = queued_ahead * tokens_per_queued
        self.eta_min_seconds = self.input_tokens / rate.tokens_per_second
        self.eta_max_seconds = (
            ahead_tokens + self.input_tokens + self.max_output_tokens
        ) / rate.tokens_per_second


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A dry run's figures per model, and the quota refusal create would
    answer now (None: it would take the batch)."""

    models: list[ModelEstimate]
    refusal: errors.QuotaExceeded | None = None


def render(models: list[ModelEstimate], refusal: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dry-run answer (the same on every dialect's path). ``admission``:
    whether create would take the batch now, else ``refusal``, the error it
    would answer in the OpenAI error envelope's fields (the API renders it:
    only the API knows its HTTP status)."""
    return {
        "object": "batch.estimate",
        "dry_run": True,
        "request_count": sum(m.requests for m in models),
        "input_tokens": sum(m.input_tokens for m in models),
        "input_tokens_exact": all(m.exact for m in models),
        "max_output_tokens": sum(m.max_output_tokens for m in models),
        "cost": {
            "currency": "usd",
            "min": round(sum(m.cost_min for m in models), 10),
            "max": round(sum(m.cost_max for m in models), 10),
        },
        "models": [_render_model(m) for m in models],
        "admission": _render_admission(refusal, models),
    }


def _render_admission(
    refusal: dict[str, Any] | None, models: list[ModelEstimate]
) -> dict[str, Any]:
    """A quota refusal first (create would answer it); else, requests for a
    model this server does not serve: create takes them, but they end
    errored at once, so the batch is not reported as admitted."""
    unserved = [m for m in models if not m.configured]
    if refusal is None and unserved:
        names = ", ".join(repr(m.model) for m in unserved)
        count = sum(m.requests for m in unserved)
        refusal = {
            # Not an HTTP answer: create would take the batch (200).
            "status": None,
            "message": f"unknown model {names}: not configured on this server, so "
            f"{count} request{'s' if count != 1 else ''} would end errored at once "
            "(GET /v1/models lists the served models)",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    return {"admitted": refusal is None, "error": refusal}


def _render_model(m: ModelEstimate) -> dict[str, Any]:
    return {
        "model": m.model,
        "configured": m.configured,
        "request_count": m.requests,
        "input_tokens": m.input_tokens,
        "input_tokens_exact": m.exact,
        "max_output_tokens": m.max_output_tokens,
        "cost": {"min": round(m.cost_min, 10), "max": round(m.cost_max, 10)},
        "eta": _render_eta(m),
    }


def _render_eta(m: ModelEstimate) -> dict[str, Any] | None:
    """None: no ETA (an upstream's real-time speed is unknown). A
    provider-batch model whose jobs have not been measured yet gets its
    source with null times and ``sample_jobs`` 0, as an embedded model not
    measured yet says ``configured``."""
    if m.turnaround is not None:
        return _render_job_eta(m, m.turnaround)
    if m.throughput is None or m.eta_min_seconds is None:
        return None
    return {
        "min_seconds": round(m.eta_min_seconds, 1),
        "max_seconds": round(m.eta_max_seconds or m.eta_min_seconds, 1),
        "tokens_per_second": round(m.throughput.tokens_per_second, 1),
        "throughput_source": m.throughput.source.value,
        "sample_requests": m.throughput.sample_requests,
        "measured_concurrency": round(m.throughput.concurrency, 1) or None,
        "queued_ahead": m.queued_ahead,
    }


def _render_job_eta(m: ModelEstimate, turnaround: JobTurnaround) -> dict[str, Any]:
    """The range ``set_job_eta`` worked out (null times while unmeasured)."""
    return {
        "min_seconds": _rounded(m.eta_min_seconds),
        "max_seconds": _rounded(m.eta_max_seconds),
        "throughput_source": ThroughputSource.JOB_TURNAROUND.value,
        "turnaround_seconds": _rounded(turnaround.seconds),
        "sample_jobs": turnaround.sample_jobs,
        "flush_after_seconds": turnaround.flush_after_seconds,
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)
