"""The embeddings engine's decisions, pure (no llama.cpp), cheap to test.

- :func:`take`: how many queued inputs go into the next ``llama_decode``.
- :func:`pooling_type`: which of llama.cpp's pooling types a model gets.
- :func:`finish`: a pooled vector as the client receives it (shortened to
  ``dimensions``, then L2-normalised).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence

from batchgate.backends.llama_cpp import options


class LlamaPooling(enum.IntEnum):
    """llama.cpp's ``enum llama_pooling_type`` (same values)."""

    NONE = 0
    MEAN = 1
    CLS = 2
    LAST = 3
    RANK = 4


_CHOSEN = {
    options.Pooling.MEAN: LlamaPooling.MEAN,
    options.Pooling.CLS: LlamaPooling.CLS,
    options.Pooling.LAST: LlamaPooling.LAST,
}


def pooling_type(setting: options.Pooling, declared: int | None) -> LlamaPooling:
    """The configured pooling; for ``model``, what the GGUF declares, falling
    back to mean when it declares none (chat models such as SmolLM2 do not).

    A GGUF declaring rank pooling is a reranker: it scores pairs, it does not
    embed, so it is refused unless a pooling is chosen explicitly.
    """
    if setting is not options.Pooling.MODEL:
        return _CHOSEN[setting]
    if declared is None or declared == LlamaPooling.NONE:
        return LlamaPooling.MEAN
    if declared == LlamaPooling.RANK:
        raise ValueError(
            "the GGUF declares rank pooling (a reranker, not an embedding model); "
            'set pooling = "mean", "cls" or "last" to embed with it anyway'
        )
    try:
        return LlamaPooling(declared)
    except ValueError:
        raise ValueError(f"the GGUF declares an unknown pooling type {declared}") from None


def take(lengths: Iterable[int], budget: int, max_inputs: int) -> int:
    """How many inputs, from the front of the queue, the next decode holds.

    Inputs are packed whole (pooling needs every token of a sequence in the
    same decode) and in queue order, so a request's inputs finish together and
    early requests finish first: as many as fit in ``budget`` tokens, at most
    ``max_inputs``. An input longer than the budget (but within the context,
    which intake checks) goes alone.
    """
    count = used = 0
    for n in lengths:
        if count == max_inputs or (count and used + n > budget):
            break
        count += 1
        used += n
    return count


def finish(vector: Sequence[float], dimensions: int | None) -> list[float]:
    """Keep the first ``dimensions`` values (all if None), then scale to unit
    length. Shortening before normalising is how Matryoshka-trained models
    (OpenAI's text-embedding-3, nomic-embed v1.5) are meant to be cut; on other
    models the shortened vector is still unit-length, just less informative."""
    kept = list(vector[:dimensions] if dimensions is not None else vector)
    norm = math.hypot(*kept)
    if not math.isfinite(norm):
        raise ValueError("the model produced a vector with non-finite values")
    if norm == 0.0:
        return kept
    return [x / norm for x in kept]
