"""What the queue looks like per model, at one moment: the figures an operator
watches (metrics, the dashboard's models page). Pure: the store fills them in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

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
