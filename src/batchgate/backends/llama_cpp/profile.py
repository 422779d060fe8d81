"""Where a scheduler step's time goes, and how full its batches are.

Always on: a handful of ``perf_counter`` reads per step (each step is tens of
milliseconds of ``llama_decode``), so the numbers a benchmark prints are the
ones a deployment pays. Written by the engine thread only.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Sequence

PHASES = ("plan", "assemble", "decode", "sample", "accept")


@dataclasses.dataclass
class StepProfile:
    """Totals over every step since the engine started."""

    seconds: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(PHASES, 0.0)
    )
    steps: int = 0
    tokens: int = 0  # every token decoded (generated and prompt)
    generated: int = 0  # tokens decoded to continue a reply (one per generating slot)
    ubatches: int = 0  # llama.cpp graph computes (see ubatch_count)
    sizes: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)

    def record(self, phase: str, started: float) -> float:
        """Add the time since ``started`` to ``phase``; returns now."""
        now = time.perf_counter()
        self.seconds[phase] += now - started
        return now

    def summary(self) -> str:
        total = sum(self.seconds.values()) or 1e-9
        steps = self.steps or 1
        parts = ", ".join(
            f"{phase} {1e3 * self.seconds[phase] / steps:.2f} ms"
            f" ({100 * self.seconds[phase] / total:.0f} %)"
            for phase in PHASES
        )
        return (
            f"{self.steps} steps, per step: {parts}; tokens per step {self.tokens / steps:.1f} "
            f"(generating {self.generated / steps:.1f}), graph computes per step "
            f"{self.ubatches / steps:.2f}"
        )


def ubatch_count(runs: Sequence[tuple[int, int]], n_ubatch: int, *, unified: bool) -> int:
    """How many graph computes llama.cpp makes of one batch, given its
    ``(sequence, tokens)`` runs in batch order (each sequence's tokens
    contiguous).

    With a unified KV cache a batch is cut into ``n_ubatch`` pieces. With one
    KV stream per sequence (``split_equal(sequential=True)`` in
    llama-batch.cpp) a piece holds sequences whose ids follow one another,
    each with the same number of tokens; so a gap in the sequence ids, or a
    prompt chunk beside one-token decodes, costs another pass over the weights.
    """
    total = sum(n for _, n in runs)
    if unified:
        return -(-total // n_ubatch)
    remaining = dict(runs)
    order = [seq for seq, _ in runs]
    count = 0
    while any(remaining.values()):
        chosen: list[int] = []
        for seq in order:
            if remaining[seq] and (not chosen or seq == chosen[-1] + 1):
                chosen.append(seq)
        take = min(min(remaining[seq] for seq in chosen), max(1, n_ubatch // len(chosen)))
        for seq in chosen:
            remaining[seq] -= take
        count += 1
    return count
