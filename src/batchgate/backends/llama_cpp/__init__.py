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
(system + user/assistant turns). ``temperature`` 0 is greedy; unset means 1.0
(the Messages API default); ``top_p``, ``top_k`` and ``seed`` feed llama.cpp's
sampler chain. ``stop_sequences`` are matched on the text and cut off.

What it cannot honour is refused with :class:`base.UnsupportedRequest`: a
prompt that does not fit ``n_ctx`` (the context is per request: prompt and
output together), non-empty ``tools`` or tool blocks, image blocks. Dropped
without error: ``thinking`` (and thinking blocks of earlier turns),
``tool_choice``, ``response_format``, ``metadata``. A reply that reaches the end
of the context stops with ``max_tokens``.

Cancelling the task that awaits :meth:`LlamaCppBackend.complete` aborts the
sequence at the engine's next step and frees its slot and KV cells.
"""

from __future__ import annotations

import asyncio
import contextlib

from batchgate import chat, config
from batchgate.backends import base
from batchgate.backends.llama_cpp import engine, options, scheduler, text

__all__ = ["LlamaCppBackend", "create"]


class LlamaCppBackend:
    """The :class:`base.Backend` facade over the engine thread."""

    def __init__(self, opts: options.EngineOptions) -> None:
        model_path = opts.resolved_model_path()
        if not model_path.is_file():
            raise ValueError(f"llama_cpp: model file not found: {model_path}")
        self.options = opts
        self.capabilities = base.Capabilities(
            tools=False,
            images=False,
            thinking=False,
            stop_sequences=True,
            max_context=opts.n_ctx,  # per request (prompt + output)
        )
        self._engine = engine.Engine(opts, model_path)

    @property
    def stats(self) -> scheduler.Stats:
        """Engine counters (prefix hits, reused and prefilled tokens, steps)."""
        return self._engine.stats

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        text.chat_messages(request)  # refuse tools/images before queueing
        loop = asyncio.get_running_loop()
        future: asyncio.Future[chat.ChatResponse] = loop.create_future()

        def settle(result: chat.ChatResponse | BaseException) -> None:
            if future.done():  # cancelled meanwhile
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        def deliver(result: chat.ChatResponse | BaseException) -> None:
            # Called on the engine thread. A closed loop means nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result)

        job = scheduler.Job(request=request, deliver=deliver)
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
