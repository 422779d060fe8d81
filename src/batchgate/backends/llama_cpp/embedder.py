"""Embeddings on the engine thread: many inputs per ``llama_decode``.

A context of its own (``embeddings = true``, llama.cpp's pooling, one unified
KV buffer) over the model the chat engine shares. Every input of every queued
request is one sequence; each step packs as many whole inputs as fit in
``embed_n_batch`` tokens and ``embed_n_seq`` sequences (see
:func:`.embedding_plan.take`) into one decode, reads one pooled vector per
sequence, and clears the KV cache for the next step. Inputs of different
requests share a decode, so thousands of small concurrent requests are
embedded a few dozen at a time, not one by one.

Per request: strings are tokenized with the vocabulary's own BOS/EOS (a
``[CLS] ... [SEP]`` for BERT-like models) and control-token text is left as
text; token arrays are taken as given. An input longer than the context
(``n_ctx``, capped by the model's training context), an empty input, a token
id outside the vocabulary, or ``dimensions`` above the model's size fail the
request with :class:`base.UnsupportedRequest` naming the input's index.

Runs on the engine thread only.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import llama_cpp

from batchgate.backends import base
from batchgate.backends.llama_cpp import embedding_plan, model, options
from batchgate.canonical import embeddings

Deliver = Callable[[embeddings.EmbeddingResponse | BaseException], None]


@dataclasses.dataclass(eq=False)
class EmbedJob:
    """One embeddings request travelling through the engine. ``cancelled`` is
    set from the event-loop thread; the engine drops its inputs at its next step."""

    request: embeddings.EmbeddingRequest
    deliver: Deliver
    cancelled: bool = False
    vectors: list[list[float]] = dataclasses.field(default_factory=list)
    remaining: int = 0
    n_tokens: int = 0
    done: bool = False


@dataclasses.dataclass
class EmbedStats:
    """Counters for benchmarks and tests (written by the engine thread only)."""

    requests: int = 0
    inputs: int = 0
    tokens: int = 0
    decodes: int = 0


@dataclasses.dataclass(eq=False)
class _Input:
    job: EmbedJob
    index: int
    tokens: list[int]


class Embedder:
    def __init__(
        self, loaded: model.Model, opts: options.EngineOptions, stats: EmbedStats | None = None
    ) -> None:
        self._model = loaded
        self.stats = stats or EmbedStats()
        self.pooling = embedding_plan.pooling_type(opts.pooling, loaded.declared_pooling())
        n_ctx_train = loaded.n_ctx_train
        # The longest input: one whole sequence of the context.
        self.max_tokens = min(opts.n_ctx, n_ctx_train) if n_ctx_train > 0 else opts.n_ctx
        self._budget = opts.embed_n_batch
        self._max_inputs = opts.embed_n_seq
        self._n_embd = loaded.n_embd
        self._encoder_only = loaded.encoder_only
        self._pending: collections.deque[_Input] = collections.deque()
        self._ctx: Any = None
        self._batch: Any = None
        size = max(self.max_tokens, self._budget)
        # The KV cache is cleared before every decode, so it only ever holds
        # one decode's tokens; unified, so one long input may use all of it.
        # n_ubatch = n_batch: a sequence split over micro-batches would be
        # pooled from its last part only (and non-causal models refuse it).
        params = model.context_params(
            opts, n_ctx=size, n_batch=size, n_seq_max=opts.embed_n_seq, kv_unified=True
        )
        params.embeddings = True
        params.pooling_type = int(self.pooling)
        self._ctx = llama_cpp.llama_init_from_model(loaded.ptr, params)
        if not self._ctx:
            raise RuntimeError(
                f"llama.cpp could not create an embeddings context for {loaded.path}"
            )
        self._memory: Any = llama_cpp.llama_get_memory(self._ctx)  # NULL for encoder-only models
        self._batch = llama_cpp.llama_batch_init(size, 0, 1)

    # -- intake ---------------------------------------------------------------

    def add(self, job: EmbedJob) -> None:
        """Tokenize and queue a request's inputs, or deliver why it cannot run."""
        try:
            inputs = self._tokenize(job.request)
        except base.UnsupportedRequest as exc:
            job.deliver(exc)
            return
        job.vectors = [[] for _ in inputs]
        job.remaining = len(inputs)
        job.n_tokens = sum(len(tokens) for tokens in inputs)
        self._pending.extend(_Input(job, i, tokens) for i, tokens in enumerate(inputs))
        self.stats.requests += 1

    def _tokenize(self, request: embeddings.EmbeddingRequest) -> list[list[int]]:
        if request.dimensions is not None and request.dimensions > self._n_embd:
            raise base.UnsupportedRequest(
                f"dimensions is {request.dimensions}; this model's vectors have "
                f"{self._n_embd} dimensions"
            )
        result: list[list[int]] = []
        inputs: Sequence[str | list[int]] = request.input  # either kind, never mixed
        for index, item in enumerate(inputs):
            if isinstance(item, str):
                tokens = self._model.tokenize(item, add_special=True, parse_special=False)
            else:
                tokens = item
                bad = next((t for t in tokens if not 0 <= t < self._model.n_vocab), None)
                if bad is not None:
                    raise base.UnsupportedRequest(
                        f"input[{index}] has token id {bad}; this model's vocabulary "
                        f"has ids 0..{self._model.n_vocab - 1}"
                    )
            if not tokens or (isinstance(item, str) and not item):
                raise base.UnsupportedRequest(f"input[{index}] is empty")
            if len(tokens) > self.max_tokens:
                raise base.UnsupportedRequest(
                    f"input[{index}] is {len(tokens)} tokens; this model embeds at most "
                    f"{self.max_tokens} tokens per input"
                )
            result.append(tokens)
        return result

    def idle(self) -> bool:
        return not self._pending

    # -- one decode -------------------------------------------------------------

    def step(self) -> None:
        if any(item.job.cancelled or item.job.done for item in self._pending):
            self._pending = collections.deque(
                item for item in self._pending if not (item.job.cancelled or item.job.done)
            )
        count = embedding_plan.take(
            (len(item.tokens) for item in self._pending), self._budget, self._max_inputs
        )
        if count == 0:
            return
        items = [self._pending.popleft() for _ in range(count)]
        batch = self._batch
        n = 0
        for seq, item in enumerate(items):
            for pos, token in enumerate(item.tokens):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True  # pooling reads every token's output
                n += 1
        batch.n_tokens = n
        if self._memory:
            llama_cpp.llama_memory_clear(self._memory, True)
        if self._encoder_only:
            status = llama_cpp.llama_encode(self._ctx, batch)
        else:
            status = llama_cpp.llama_decode(self._ctx, batch)
        self.stats.decodes += 1
        if status != 0:
            error = base.BackendError(
                f"llama_cpp embeddings decode failed with status {status}", retryable=True
            )
            for item in items:
                self._fail(item.job, error)
            return
        for seq, item in enumerate(items):
            self._collect(item, seq)

    def _collect(self, item: _Input, seq: int) -> None:
        job = item.job
        if job.done or job.cancelled:
            return
        pointer = llama_cpp.llama_get_embeddings_seq(self._ctx, seq)
        if not pointer:
            self._fail(job, base.BackendError("llama.cpp returned no embedding", retryable=True))
            return
        try:
            job.vectors[item.index] = embedding_plan.finish(
                pointer[: self._n_embd], job.request.dimensions
            )
        except ValueError as exc:
            self._fail(job, base.BackendError(str(exc), retryable=False))
            return
        self.stats.inputs += 1
        self.stats.tokens += len(item.tokens)
        job.remaining -= 1
        if job.remaining == 0:
            job.done = True
            job.deliver(
                embeddings.EmbeddingResponse(
                    model=job.request.model,
                    vectors=job.vectors,
                    usage=embeddings.EmbeddingUsage(input_tokens=job.n_tokens),
                )
            )

    def _fail(self, job: EmbedJob, error: BaseException) -> None:
        if not job.done:
            job.done = True
            job.deliver(error)

    def fail_all(self, error: BaseException) -> None:
        for item in self._pending:
            self._fail(item.job, error)
        self._pending.clear()

    def close(self) -> None:
        model.free_context(self._ctx, self._batch)
        self._ctx, self._batch = None, None
