"""The embedded engine: any GGUF chat model through llama.cpp, in-process.

Built on llama-cpp-python's low-level API (``llama_decode``, sampler chains,
``llama_memory_seq_*``), not on ``llama_cpp.Llama``, because that class runs
one request at a time. Here up to ``n_parallel`` requests decode together
(continuous batching, chunked prefill) and a prompt prefix shared by many
requests (a batch's long system prompt) is computed once; see
:mod:`.scheduler`.

Settings (``[models.NAME]`` keys besides ``backend``; all optional): see
:class:`.options.EngineOptions` — ``model_path``, ``n_ctx``, ``n_parallel``,
``n_threads``, ``n_batch``, ``prefix_cache``, ``prefix_slots``,
``kv_unified``, ``verbose``. Unknown keys are an error.

Lifecycle: ``create`` validates the settings and checks the file exists; the
model loads on the first request, on the engine's own thread, with llama.cpp's
logging silenced unless ``verbose``. ``aclose`` stops the thread and frees the
model and context.

Per request: the prompt is rendered with the chat template stored in the GGUF
(system + user/assistant turns), except for a ``/v1/completions`` line
(``raw_prompt``), whose prompt is continued as raw text.
``temperature`` 0 is greedy; unset means 1.0 (the Messages API default);
``top_p``, ``top_k`` and ``seed`` feed llama.cpp's sampler chain.
``stop_sequences`` are matched on the text and cut off.

Its capabilities (:meth:`.options.EngineOptions.capabilities`) say it has
no tool use, no images and no thinking, so the worker's capability check
refuses requests with non-empty ``tools``, tool blocks, image blocks or
``thinking`` enabled before they reach it. It refuses itself, with
:class:`base.UnsupportedRequest`, a prompt that does not fit ``n_ctx`` (the
context is per request: prompt and output together). Dropped without
error: thinking blocks of earlier turns, ``tool_choice``,
``response_format``, ``metadata``. A reply that reaches the end
of the context stops with ``max_tokens``.

Cancelling the task that awaits :meth:`LlamaCppBackend.complete` aborts the
sequence at the engine's next step and frees its slot and KV cells.

Embeddings (:meth:`LlamaCppBackend.embed`): the same model serves them, from a
second context over the same weights (see :mod:`.embedder`): vectors pooled
as the GGUF declares (else mean; ``pooling`` overrides), inputs of concurrent
requests packed together into each ``llama_decode``, every vector
L2-normalised; ``dimensions`` keeps the first N values and re-normalises.
``embeddings_only = true`` is for an embedding GGUF (nomic-embed, bge, ...):
the model then serves embeddings only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from batchgate import config
from batchgate.backends import base
from batchgate.backends.llama_cpp import options, scheduler
from batchgate.canonical import chat, embeddings

if TYPE_CHECKING:
    from batchgate.backends.llama_cpp import embedder, engine

# ``engine`` and ``embedder`` load the llama_cpp bindings (over a second to
# import); they are imported when a backend is built, so importing this
# package (the scheduler's planning, the options) does not pay for them.

_Result = TypeVar("_Result")

__all__ = ["LlamaCppBackend", "create"]


class LlamaCppBackend:
    """The :class:`base.Backend` facade over the engine thread."""

    def __init__(self, opts: options.EngineOptions) -> None:
        model_path = opts.resolved_model_path()
        if not model_path.is_file():
            raise ValueError(f"llama_cpp: model file not found: {model_path}")
        self.options = opts
        self.capabilities = opts.capabilities()
        from batchgate.backends.llama_cpp import engine

        self._engine = engine.Engine(opts, model_path)

    @property
    def stats(self) -> scheduler.Stats:
        """Engine counters (prefix hits, reused and prefilled tokens, steps)."""
        return self._engine.stats

    @property
    def embed_stats(self) -> embedder.EmbedStats:
        """Embeddings counters (requests, inputs, tokens, decodes)."""
        return self._engine.embed_stats

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        # What the model cannot serve (tools, images, chat on an
        # embeddings-only model) the worker's capability check has refused.
        return await self._run(lambda deliver: scheduler.Job(request=request, deliver=deliver))

    async def embed(self, request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse:
        from batchgate.backends.llama_cpp import embedder

        return await self._run(lambda deliver: embedder.EmbedJob(request=request, deliver=deliver))

    async def _run(
        self,
        make_job: Callable[[Callable[[_Result | BaseException], None]], engine.AnyJob],
    ) -> _Result:
        """Submit a job to the engine thread and await what it delivers."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Result] = loop.create_future()

        def settle(result: _Result | BaseException) -> None:
            if future.done():  # cancelled meanwhile
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        def deliver(result: _Result | BaseException) -> None:
            # Called on the engine thread. A closed loop means nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result)

        job = make_job(deliver)
        self._engine.submit(job)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancelled = True
            self._engine.wake()
            raise

    async def aclose(self) -> None:
        await asyncio.to_thread(self._engine.close)


def create(model: config.ModelConfig) -> base.Backend:
    """Registry factory: ``backend = "llama_cpp"``."""
    return LlamaCppBackend(options.parse(model.name, model.options))
