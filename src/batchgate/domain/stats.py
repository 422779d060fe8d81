"""What the queue looks like per model, at one moment: the figures an operator
watches (metrics, the dashboard's models page). Pure: the store fills them in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState


@dataclasses.dataclass(frozen=True)
class ModelStats:
    """One model's open requests now, and what ended recently.

    ``by_state`` counts the open requests (queued, running); ``recent`` counts
    those that reached a terminal state in the last ``window_seconds``, and
    tokens and cost are theirs. Nothing here grows with the finished rows a
    deployment keeps: all-time totals are the workers' counters (/metrics).
    """

    model: str
    by_state: Mapping[RequestState, int]
    # Queued but backing off after a retryable failure (not_before in the future).
    retry_waiting: int = 0
    # Submission time of the oldest batch that still has a queued request here.
    oldest_queued_at: float | None = None
    recent: Mapping[RequestState, int] = dataclasses.field(default_factory=dict)
    window_seconds: float = 300.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def count(self, state: RequestState) -> int:
        return self.by_state.get(state, 0)

    @property
    def queued(self) -> int:
        return self.count(RequestState.QUEUED)

    @property
    def in_flight(self) -> int:
        return self.count(RequestState.RUNNING)

    @property
    def recent_finished(self) -> int:
        return sum(self.recent.values())

    @property
    def throughput(self) -> float:
        """Requests that ended per second over the window."""
        return self.recent_finished / self.window_seconds

    @property
    def error_rate(self) -> float | None:
        """Errored among the requests a model ran to an end in the window
        (cancelled and expired ones never reached an answer); None if none."""
        ran = self.recent.get(RequestState.SUCCEEDED, 0) + self.recent.get(RequestState.ERRORED, 0)
        if not ran:
            return None
        return self.recent.get(RequestState.ERRORED, 0) / ran

    def oldest_queued_age(self, now: float) -> float:
        """Seconds the oldest queued request has waited since submission (0 if none)."""
        return 0.0 if self.oldest_queued_at is None else max(now - self.oldest_queued_at, 0.0)


@dataclasses.dataclass
class ModelTally:
    """Adds up one model's requests (a row, or a group of rows, at a time)
    into its :class:`ModelStats`; every store counts through it."""

    by_state: dict[RequestState, int] = dataclasses.field(default_factory=dict)
    recent: dict[RequestState, int] = dataclasses.field(default_factory=dict)
    retry_waiting: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, state: RequestState, count: int, *, waiting: int = 0) -> None:
        """``count`` open requests in ``state``, ``waiting`` of them backing off."""
        self.by_state[state] = self.by_state.get(state, 0) + count
        self.retry_waiting += waiting

    def add_recent(
        self,
        state: RequestState,
        count: int,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
    ) -> None:
        """``count`` requests that ended in ``state`` within the window, with their usage."""
        self.recent[state] = self.recent.get(state, 0) + count
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost += cost

    def stats(
        self, model: str, *, oldest_queued_at: float | None, window_seconds: float
    ) -> ModelStats:
        return ModelStats(
            model=model,
            by_state=self.by_state,
            retry_waiting=self.retry_waiting,
            oldest_queued_at=oldest_queued_at,
            recent=self.recent,
            window_seconds=window_seconds,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.cost,
        )


def for_models(stats: list[ModelStats], models: list[str]) -> list[ModelStats]:
    """``stats`` with an empty entry for each configured model that has no
    stored request yet, configured models first (in config order)."""
    found = {entry.model: entry for entry in stats}
    ordered = [found.pop(name, ModelStats(model=name, by_state={})) for name in models]
    return ordered + sorted(found.values(), key=lambda entry: entry.model)


# What the operator pays the provider per tenant dollar, by path: a
# provider's batch API charges its batch price, which is what the tenant is
# billed (``ModelConfig.batch_cost``, half the list price); a row that fell
# back to the real-time upstream costs the full list price, twice that.
OPERATOR_COST_FACTOR: Mapping[uj.Path, float] = {uj.Path.BATCH: 1.0, uj.Path.REALTIME: 2.0}


@dataclasses.dataclass(frozen=True)
class PathCost:
    """A provider-batch model's requests that ended on one path (succeeded
    or errored) in a window: how many, what the tenants were billed for
    them (the ``cost`` column: the batch price on either path) and what the
    operator paid the provider for them."""

    model: str
    path: uj.Path
    requests: int = 0
    tenant_billed: float = 0.0

    @property
    def operator_cost(self) -> float:
        return self.tenant_billed * OPERATOR_COST_FACTOR[self.path]

    @property
    def margin(self) -> float:
        """Billed less paid: negative when the fallback cost more than it brought."""
        return self.tenant_billed - self.operator_cost


@dataclasses.dataclass(frozen=True)
class ProviderBatchFigures:
    """A provider-batch model on the models page: what each path served in
    a window (every path, zeros where it served nothing) and its jobs'
    measured turnaround (None while none has ended)."""

    model: str
    paths: tuple[PathCost, ...]
    turnaround_seconds: float | None = None
    turnaround_jobs: int = 0

    @property
    def tenant_billed(self) -> float:
        return sum(path.tenant_billed for path in self.paths)

    @property
    def operator_cost(self) -> float:
        return sum(path.operator_cost for path in self.paths)

    @property
    def margin(self) -> float:
        return self.tenant_billed - self.operator_cost


def paths_of(model: str, costs: list[PathCost]) -> tuple[PathCost, ...]:
    """``model``'s entry for every path, in Path order (zeros where none)."""
    found = {cost.path: cost for cost in costs if cost.model == model}
    return tuple(found.get(path, PathCost(model, path)) for path in uj.Path)
