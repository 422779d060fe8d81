"""Request counts and usage of a batch, derived from its request states."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from batchgate.domain.states import RequestState


@dataclasses.dataclass(frozen=True)
class StateTally:
    """Rows per request state, with the usage and cost of the finished ones."""

    by_state: Mapping[RequestState, int]
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cached_tokens: int = 0  # of input_tokens
    reasoning_tokens: int = 0  # of output_tokens
    # Of the running requests, those whose backend call has started; the
    # rest are claimed by a worker and waiting for a free call slot.
    generating: int = 0

    def count(self, state: RequestState) -> int:
        return self.by_state.get(state, 0)

    @property
    def claimed(self) -> int:
        """Running requests not generating yet (leased, waiting for a slot)."""
        return max(0, self.count(RequestState.RUNNING) - self.generating)

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def open(self) -> int:
        """Requests not yet in a terminal state."""
        return self.count(RequestState.QUEUED) + self.count(RequestState.RUNNING)

    @property
    def failed(self) -> int:
        """OpenAI's ``failed``: everything that ended without a result."""
        return (
            self.count(RequestState.ERRORED)
            + self.count(RequestState.CANCELED)
            + self.count(RequestState.EXPIRED)
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def usage(self) -> dict[str, Any]:
        """OpenAI's batch ``usage``, with its details."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }
