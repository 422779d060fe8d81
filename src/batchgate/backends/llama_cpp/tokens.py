"""Input tokens of a request, counted exactly as the engine will count them:
the GGUF's own chat template and tokenizer, from a vocab-only load (chat),
or the tokenizer alone (embeddings, as the embedder tokenizes them)."""

from __future__ import annotations

import threading

from batchgate.backends.llama_cpp import model, options, runtime, text
from batchgate.canonical import chat, embeddings


class PromptCounter:
    def __init__(self, opts: options.EngineOptions) -> None:
        self._model = model.acquire(
            opts.resolved_model_path(), verbose=opts.verbose, vocab_only=True
        )
        self._runtime = runtime.Runtime(opts, self._model)
        # llama.cpp promises thread safety for contexts, not for concurrent
        # tokenizer calls on one vocabulary: one at a time.
        self._lock = threading.Lock()

    def count(self, request: chat.ChatRequest) -> int:
        """Prompt tokens; raises ``base.UnsupportedRequest`` for what the
        engine would refuse (tools, images)."""
        with self._lock:
            return len(self._runtime.tokenize(text.prompt_text(request, self._runtime.render)))

    def count_embedding(self, request: embeddings.EmbeddingRequest) -> int:
        """Input tokens as the embedder counts them (embedder.py): each
        string with the vocabulary's own BOS/EOS, control-token text left as
        text; each token array as given."""
        total = 0
        with self._lock:
            for item in request.input:
                if isinstance(item, str):
                    item = self._model.tokenize(item, add_special=True, parse_special=False)
                total += len(item)
        return total

    def close(self) -> None:
        self._runtime.close()
        model.release(self._model)
