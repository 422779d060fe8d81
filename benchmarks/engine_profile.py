"""Profile the engine from outside, the same way for any version of it.

Wraps the methods every version of the engine has (``Scheduler.step``,
``Runtime.decode`` and whichever sampling method it has), so the code from
before a change and after it are measured alike: time inside
``llama_decode`` against the rest of a step (planning, batch assembly,
sampling, detokenising), the batch occupancy (tokens per step, how many of
them continue a reply) and how many graph computes llama.cpp makes of each
batch; the asyncio hand-off is the wall time the engine thread did not work.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class Probe:
    seconds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    steps: int = 0
    decodes: int = 0
    tokens: int = 0
    outputs: int = 0
    ubatches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "seconds": dict(self.seconds)}


def _timed(probe: Probe, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            probe.seconds[name] += time.perf_counter() - started

    return wrapper


def _split_equal(seqs: list[int], n_ubatch: int) -> int:
    """Graph computes of a batch with one KV stream per sequence, as
    llama-batch.cpp's split_equal(sequential) cuts it (seqs: per token).

    The same count as batchgate.backends.llama_cpp.profile.ubatch_count, kept
    here on purpose: this probe runs inside the engine of ``--before REF``,
    whose tree may not have that module, and must count alike for both."""
    remaining: collections.Counter[int] = collections.Counter(seqs)
    order = list(dict.fromkeys(seqs))
    count = 0
    while sum(remaining.values()):
        chosen: list[int] = []
        for seq in order:
            if remaining[seq] and (not chosen or seq == chosen[-1] + 1):
                chosen.append(seq)
        take = min(min(remaining[seq] for seq in chosen), max(1, n_ubatch // len(chosen)))
        for seq in chosen:
            remaining[seq] -= take
        count += 1
    return count


def install() -> Probe:
    """Wrap the engine's classes (before any engine is made); returns the
    probe the wrappers fill."""
    from batchgate.backends.llama_cpp import runtime, scheduler

    probe = Probe()
    step = scheduler.Scheduler.step

    def counted_step(self: Any) -> None:
        probe.steps += 1
        step(self)

    scheduler.Scheduler.step = _timed(probe, "step", counted_step)  # type: ignore[method-assign]
    decode = runtime.Runtime.decode

    def observed_decode(self: Any) -> int:
        batch = self._batch
        n = int(batch.n_tokens)
        seqs = [int(batch.seq_id[i][0]) for i in range(n)]
        probe.decodes += 1
        probe.tokens += n
        probe.outputs += sum(1 for i in range(n) if batch.logits[i])
        unified = bool(getattr(self, "_unified", False))
        probe.ubatches += -(-n // self.n_batch) if unified else _split_equal(seqs, self.n_batch)
        started = time.perf_counter()
        try:
            return int(decode(self))
        finally:
            probe.seconds["decode"] += time.perf_counter() - started

    runtime.Runtime.decode = observed_decode  # type: ignore[method-assign]
    for name in ("sample", "sample_outputs"):
        if hasattr(runtime.Runtime, name):
            setattr(runtime.Runtime, name, _timed(probe, "sample", getattr(runtime.Runtime, name)))
    return probe


def describe(probe: dict[str, Any], wall: float) -> str:
    """One line: per step, llama_decode against the rest, and occupancy."""
    seconds = probe["seconds"]
    steps = max(probe["steps"], 1)
    decodes = max(probe["decodes"], 1)
    step_total = seconds.get("step", 0.0)
    decode = seconds.get("decode", 0.0)
    sample = seconds.get("sample", 0.0)
    other = step_total - decode - sample
    idle = max(wall - step_total, 0.0)
    return (
        f"per step {1e3 * step_total / steps:.1f} ms: llama_decode {1e3 * decode / steps:.1f} ms "
        f"({100 * decode / max(step_total, 1e-9):.0f} %), sampling {1e3 * sample / steps:.2f} ms, "
        f"planning+assembly+detokenising {1e3 * other / steps:.2f} ms; "
        f"engine thread idle (asyncio hand-off, waiting) {100 * idle / max(wall, 1e-9):.1f} % "
        f"of the wall time; {probe['tokens'] / decodes:.1f} tokens per step "
        f"({probe['outputs'] / decodes:.1f} sampled), {probe['ubatches'] / decodes:.2f} graph "
        "computes per step"
    )
