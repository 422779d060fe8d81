"""The one token estimator: how many tokens a request holds, known before it
runs, for admission quotas, dry-run estimates and the worker's rate limiter.

:class:`TokenCounter` (quotas, dry runs) is exact for a model on the
embedded engine (its own tokenizer and chat template; embeddings inputs
through the tokenizer alone, as the embedder counts them) and falls back to
:func:`estimate` for every other backend, whose tokenizer batchgate does not
have: OpenAI's rule of thumb, about four characters a token, plus the few
tokens of framing each message costs (OpenAI's cookbook counts 3 a message
and 3 to prime the reply). It is an estimate, not a bound: a quota in tokens
on a remote model is enforced to within that rule's accuracy.

:func:`upper_bound` (the rate limiter) must never be below what the call
uses, or a tokens-per-minute limit is overrun: the prompt's UTF-8 bytes (no
BPE tokenizer emits more tokens than bytes), a constant of template framing
per message, system prompt and tool, plus ``max_tokens``.

Both read the same parts of a request (:func:`_prompt_parts`): the system
prompt, every block of every message, and the tool definitions, which a
chat template renders into the prompt too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from typing import Protocol

from batchgate import canonical, config
from batchgate.backends import base
from batchgate.canonical import chat, embeddings

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3
# Template tokens around one message, system prompt or tool definition (role
# markers, separators, a tool's wrapper): generous, as a bound must be.
_FRAMING_BOUND = 16
# An embeddings input's framing (BOS/EOS) at most.
_EMBEDDING_FRAMING_BOUND = 2


def _prompt_parts(request: chat.ChatRequest) -> Iterator[str]:
    """The text the model reads: system prompt, each block (text as it is,
    text documents as their prompt text, everything else as its JSON), and
    each tool definition's JSON."""
    system = request.system_text()
    if system:
        yield system
    for message in request.messages:
        for block in message.blocks():
            if isinstance(block, chat.TextBlock):
                yield block.text
            elif isinstance(block, chat.DocumentBlock) and not block.source.is_pdf:
                yield block.prompt_text()
            else:  # tool calls, results, images, PDFs: count their JSON
                yield block.model_dump_json(exclude_none=True)
    for tool in request.tools or []:
        yield tool.model_dump_json(exclude_none=True)


def estimate(request: canonical.Request) -> int:
    """About how many input tokens ``request`` holds, on any tokenizer."""
    if isinstance(request, embeddings.EmbeddingRequest):
        return sum(
            len(item) if isinstance(item, list) else math.ceil(len(item) / _CHARS_PER_TOKEN)
            for item in request.input
        )
    chars = sum(len(part) for part in _prompt_parts(request))
    framing = _TOKENS_PER_MESSAGE * (len(request.messages) + (request.system is not None))
    return math.ceil(chars / _CHARS_PER_TOKEN) + framing + _REPLY_PRIMING


def upper_bound(request: canonical.Request) -> int:
    """At least as many tokens as the call will use, input and output: for
    embeddings, the inputs' bytes (or their token ids)."""
    if isinstance(request, embeddings.EmbeddingRequest):
        return sum(
            len(item) if isinstance(item, list) else len(item.encode()) + _EMBEDDING_FRAMING_BOUND
            for item in request.input
        )
    size = sum(len(part.encode()) for part in _prompt_parts(request))
    framed = len(request.messages) + len(request.tools or []) + (request.system is not None)
    return size + _FRAMING_BOUND * framed + request.max_tokens


class _Counts(Protocol):
    def count(self, request: chat.ChatRequest) -> int: ...
    def count_embedding(self, request: embeddings.EmbeddingRequest) -> int: ...


class TokenCounter:
    """Counts input tokens per model; the embedded model's tokenizer loads on
    first use (a vocab-only load, ~0.2 s) and stays for the process."""

    def __init__(self, models: Mapping[str, config.ModelConfig]) -> None:
        self._models = models
        self._exact: dict[str, _Counts] = {}
        self._lock = threading.Lock()

    def count(self, request: canonical.Request) -> int:
        return self.measure(request)[0]

    def measure(self, request: canonical.Request) -> tuple[int, bool]:
        """The input tokens, and whether the count is exact (the model's own
        tokenizer) rather than estimated."""
        counter = self._exact_counter(request.model)
        if counter is None:
            return estimate(request), False
        if isinstance(request, embeddings.EmbeddingRequest):
            return counter.count_embedding(request), True
        try:
            return counter.count(request), True
        except base.UnsupportedRequest:
            # The engine will refuse this request at once; it holds no slot.
            return estimate(request), False

    def _exact_counter(self, model: str) -> _Counts | None:
        entry = self._models.get(model)
        if entry is None or entry.backend != "llama_cpp":
            return None
        with self._lock:
            if model not in self._exact:
                from batchgate.backends.llama_cpp import options, tokens

                self._exact[model] = tokens.PromptCounter(options.parse(entry.name, entry.options))
            return self._exact[model]
