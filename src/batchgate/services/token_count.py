"""Input tokens of a request, known before it runs (admission quotas, dry-run
estimates): exact for a model on the embedded engine (its own tokenizer and
chat template; embeddings inputs through the tokenizer alone, as the embedder
counts them), estimated for every other backend, whose tokenizer batchgate
does not have.

The estimate is OpenAI's rule of thumb, about four characters a token, plus
the few tokens of framing each message costs (OpenAI's cookbook counts 3 a
message and 3 to prime the reply). It is an estimate, not a bound: a quota in
tokens on a remote model is enforced to within that rule's accuracy.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Protocol

from batchgate import canonical, chat, config, embeddings
from batchgate.backends import base

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def estimate(request: canonical.Request) -> int:
    """About how many input tokens ``request`` holds, on any tokenizer."""
    if isinstance(request, embeddings.EmbeddingRequest):
        return sum(
            len(item) if isinstance(item, list) else math.ceil(len(item) / _CHARS_PER_TOKEN)
            for item in request.input
        )
    chars = len(request.system_text() or "")
    for message in request.messages:
        for block in message.blocks():
            if isinstance(block, chat.TextBlock):
                chars += len(block.text)
            elif isinstance(block, chat.DocumentBlock) and not block.source.is_pdf:
                chars += len(block.prompt_text())
            else:  # tool calls, results, images: count their JSON
                chars += len(block.model_dump_json(exclude_none=True))
    for tool in request.tools or []:
        chars += len(tool.model_dump_json(exclude_none=True))
    framing = _TOKENS_PER_MESSAGE * (len(request.messages) + (request.system is not None))
    return math.ceil(chars / _CHARS_PER_TOKEN) + framing + _REPLY_PRIMING


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
