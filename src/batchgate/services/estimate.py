"""Dry runs: validate a batch as its create would, and say what it would cost
and take, storing nothing (domain/estimate.py adds it up).

The key's quotas are checked as create checks them (the same admission, on
the usage committed now). A batch create would refuse for a quota (429) is
still estimated, with the refusal in ``admission``: waiting clears a quota,
so the cost is still worth knowing, and a 429 would make the OpenAI and
Anthropic SDKs retry the dry run and then raise without it. A refusal that
waiting never clears (a batch over the key's size limit) is the same error
as create's, like any other invalid input."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from batchgate import canonical, config
from batchgate.backends.provider_batch import options as batch_options
from batchgate.canonical import chat
from batchgate.domain import errors, estimate, quotas
from batchgate.domain import keys as key_model
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from batchgate.services.batch_create import BatchCreation, ParsedRequest
from batchgate.services.file_batches import FileBatchService
from batchgate.store import port

# Backends whose throughput batchgate controls (the embedded engine) get an
# ETA from it; a provider-batch model from its jobs' turnaround.
# A real-time upstream's speed depends on a service we cannot see: no ETA.
_ETA_BACKENDS = frozenset({"llama_cpp"})
# A line error list longer than this is cut in the dry run's message.
_MAX_LISTED_ERRORS = 10


class EstimateStore(port.BatchStore, port.StatsReader, port.UpstreamJobStore, Protocol):
    """The roles a dry run reads: quota admission, recent throughput, and
    provider-batch jobs' turnaround."""


class EstimateService:
    def __init__(
        self,
        store: EstimateStore,
        models: Mapping[str, config.ModelConfig],
        options: config.EstimateSettings,
        creation: BatchCreation,
        file_batches: FileBatchService,
    ) -> None:
        self.store = store
        self.models = models
        self.options = options
        self.creation = creation
        self.file_batches = file_batches

    def inline(
        self, caller: key_model.ApiKey, requests: list[ParsedRequest], *, anthropic: bool
    ) -> estimate.Estimate:
        """A native or Anthropic create body's requests, validated as create does."""
        self.creation.check_size(len(requests))
        self.creation.check_inputs(requests, anthropic=anthropic)
        by_model: dict[str, estimate.ModelEstimate] = {}
        for item in requests:
            self._add(by_model, item.request)
        # The demand create computes: input tokens per served model.
        tokens = {m.model: m.input_tokens for m in by_model.values() if m.configured}
        return self._finish(by_model, self._refusal(caller, tokens, len(requests)))

    def file(
        self, caller: key_model.ApiKey, input_file_id: str, endpoint: str
    ) -> estimate.Estimate:
        """An OpenAI file batch: every line checked as create does; a file
        with bad lines is a 400 listing them (create would make a failed batch)."""
        record = self.file_batches.files.input_file(caller.id, input_file_id)
        by_model: dict[str, estimate.ModelEstimate] = {}
        line_errors, total, tokens, _model, error_count = self.file_batches.validate(
            record, endpoint, lambda request: self._add(by_model, request)
        )
        if not line_errors and total == 0:
            raise errors.InvalidRequest(
                "the input file holds no requests", param="input_file_id", code="empty_file"
            )
        if line_errors:
            listed = "; ".join(
                f"line {e.line}: {e.message}" for e in line_errors[:_MAX_LISTED_ERRORS]
            )
            more = error_count - _MAX_LISTED_ERRORS
            raise errors.InvalidRequest(
                f"the input file has {error_count} bad lines: {listed}"
                + (f"; and {more} more" if more > 0 else ""),
                param="input_file_id",
                code="invalid_input_file",
            )
        return self._finish(by_model, self._refusal(caller, tokens, total))

    def _refusal(
        self, caller: key_model.ApiKey, tokens: dict[str, int], total: int
    ) -> errors.QuotaExceeded | None:
        """What create would answer for this demand now: None (admitted) or
        its 429. A size limit (413) is raised, as create raises it."""
        demand = quotas.Demand(tokens=tokens, requests=total, batches=1)
        try:
            self.creation.refuse_when_full(caller)
            self.store.check_admission(caller.id, self.creation.admission(demand))
        except errors.QuotaExceeded as refused:
            return refused
        return None

    def _add(self, by_model: dict[str, estimate.ModelEstimate], request: canonical.Request) -> None:
        entry = by_model.setdefault(
            request.model,
            estimate.ModelEstimate(request.model, configured=request.model in self.models),
        )
        if self.creation.refusal(request) is not None:
            # Its model cannot serve it: create stores it errored, holding no
            # tokens and costing nothing (as for a model nobody serves).
            entry.add(0, 0, exact=True)
            return
        tokens, exact = self.creation.tokens.measure(request)
        max_output = request.max_tokens if isinstance(request, chat.ChatRequest) else 0
        entry.add(tokens, max_output, exact)

    def _finish(
        self,
        by_model: dict[str, estimate.ModelEstimate],
        refusal: errors.QuotaExceeded | None,
    ) -> estimate.Estimate:
        now = time.time()
        for entry in by_model.values():
            self._price(entry)
            self._eta(entry, now)
        return estimate.Estimate(list(by_model.values()), refusal)

    def _price(self, entry: estimate.ModelEstimate) -> None:
        # A model nobody serves costs nothing: its requests end errored at once.
        if not entry.configured:
            return
        cost = self.models[entry.model].batch_cost
        entry.cost_min = cost(entry.input_tokens, 0)
        entry.cost_max = cost(entry.input_tokens, entry.max_output_tokens)

    def _eta(self, entry: estimate.ModelEstimate, now: float) -> None:
        model = self.models.get(entry.model)
        if model is not None and model.backend in batch_options.KINDS:
            entry.set_job_eta(self._turnaround(model))
            return
        if model is None or model.backend not in _ETA_BACKENDS:
            return
        options = self.options
        recent = self.store.recent_work(entry.model, now - options.window_seconds)
        rate = estimate.throughput(recent, options.default_tokens_per_second)
        ahead = self._queued_ahead(entry.model, now)
        per_request = (
            recent.tokens / recent.requests
            if recent.requests
            else (entry.input_tokens + entry.max_output_tokens) / max(entry.requests, 1)
        )
        entry.set_eta(rate, ahead, per_request)

    def _turnaround(self, model: config.ModelConfig) -> estimate.JobTurnaround:
        seconds, sample = self.measured_turnaround(model.name)
        return estimate.JobTurnaround(
            seconds, sample, batch_options.job_options(model).flush_after_seconds
        )

    def measured_turnaround(self, model: str) -> tuple[float | None, int]:
        """A provider-batch model's median job turnaround over its recent
        ended jobs (None while none completed) and how many it is over; the
        models page shows the same figure."""
        ended = self.store.list_jobs(
            model=model, states=[uj.JobState.ENDED], limit=uj.TURNAROUND_JOBS
        )
        seconds, sample = uj.measured_turnaround(ended)
        return (seconds if sample else None), sample

    def _queued_ahead(self, model: str, now: float) -> int:
        for stats in self.store.model_stats(now):
            if stats.model == model:
                return stats.count(RequestState.QUEUED) + stats.count(RequestState.RUNNING)
        return 0
