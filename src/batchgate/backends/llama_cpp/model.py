"""The loaded GGUF model, shared by every context that runs it.

A ``llama_model`` holds the weights and is read-only once loaded, so llama.cpp
lets any number of contexts (the chat engine's, the embeddings engine's, and
those of other model names pointing at the same file) use one copy. Loaded
models are reference-counted by file path: the weights are in memory once, and
freed when the last user releases them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading
from pathlib import Path
from typing import Any

import llama_cpp

from batchgate.backends.llama_cpp import options

Token = int


def _quiet(level: int, text: bytes, user_data: object) -> None:
    """Swallow llama.cpp's log lines (model loading prints hundreds)."""


# Kept referenced for the life of the process: llama.cpp calls it from C.
_QUIET = llama_cpp.llama_log_callback(_quiet)
_lock = threading.Lock()
_initialised = False


def _init_backend(verbose: bool) -> None:
    global _initialised
    if not _initialised:
        llama_cpp.llama_backend_init()
        _initialised = True
    # llama-cpp-python installs a callback at import that prints everything.
    if not verbose:
        llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))


@dataclasses.dataclass(eq=False)
class Model:
    """One loaded GGUF file. Obtain with :func:`acquire`, give back with
    :func:`release`; never free ``ptr`` directly."""

    path: Path
    ptr: Any  # llama_model *
    vocab: Any  # const llama_vocab *
    vocab_only: bool = False  # tokenizer and metadata, no weights
    users: int = 0

    @property
    def n_ctx_train(self) -> int:
        return int(llama_cpp.llama_model_n_ctx_train(self.ptr))

    @property
    def n_embd(self) -> int:
        """Size of the vectors the model outputs."""
        return int(llama_cpp.llama_model_n_embd_out(self.ptr))

    @property
    def n_vocab(self) -> int:
        return int(llama_cpp.llama_vocab_n_tokens(self.vocab))

    @property
    def encoder_only(self) -> bool:
        """BERT-like: no decoder, so it embeds but cannot generate."""
        return bool(llama_cpp.llama_model_has_encoder(self.ptr)) and not bool(
            llama_cpp.llama_model_has_decoder(self.ptr)
        )

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None if the file lacks the key."""
        size = 256
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:
            buf = ctypes.create_string_buffer(n + 1)
            llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", errors="replace")

    def declared_pooling(self) -> int | None:
        """The pooling type the GGUF declares (``<arch>.pooling_type``), if any."""
        arch = self.metadata("general.architecture")
        value = self.metadata(f"{arch}.pooling_type") if arch else None
        return int(value) if value is not None and value.isdigit() else None

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[Token]:
        """``add_special``: BOS/EOS as the vocabulary asks; ``parse_special``:
        control-token text (``<|im_start|>``) becomes the control token."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            tokens = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_special, parse_special
            )
            if n >= 0:
                return list(tokens[:n])
            capacity = -n


_loaded: dict[tuple[Path, bool], Model] = {}


def acquire(path: Path, *, verbose: bool, vocab_only: bool = False) -> Model:
    """The model at ``path``, loading it if no one holds it yet.

    ``vocab_only``: the tokenizer, chat template and metadata without the
    weights (~0.2 s, a few MB), for counting tokens outside the engine.
    """
    key = (path.resolve(), vocab_only)
    with _lock:
        _init_backend(verbose)
        model = _loaded.get(key)
        if model is None:
            params = llama_cpp.llama_model_default_params()
            params.vocab_only = vocab_only
            ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
            if not ptr:
                raise RuntimeError(f"llama.cpp could not load the GGUF file {path}")
            model = Model(
                path=path,
                ptr=ptr,
                vocab=llama_cpp.llama_model_get_vocab(ptr),
                vocab_only=vocab_only,
            )
            _loaded[key] = model
        model.users += 1
        return model


def holders(path: Path) -> int:
    """How many users hold the weights of ``path`` (0: not loaded)."""
    with _lock:
        model = _loaded.get((path.resolve(), False))
        return model.users if model is not None else 0


def release(model: Model) -> None:
    """Drop one user; the last one frees the weights."""
    with _lock:
        model.users -= 1
        if model.users > 0:
            return
        _loaded.pop((model.path.resolve(), model.vocab_only), None)
        if model.ptr:
            llama_cpp.llama_model_free(model.ptr)
        model.ptr = None


def context_params(
    opts: options.EngineOptions, *, n_ctx: int, n_batch: int, n_seq_max: int, kv_unified: bool
) -> Any:
    """``llama_context_params`` as both engines (chat, embeddings) set them:
    every step is one micro-batch (``n_ubatch = n_batch``), threads and flash
    attention from the options, no perf counters."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = n_batch
    params.n_seq_max = n_seq_max
    params.n_threads = opts.resolved_threads()
    params.n_threads_batch = opts.resolved_threads()
    params.kv_unified = kv_unified
    params.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if opts.flash_attn
        else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.no_perf = True
    return params


def free_context(ctx: Any, batch: Any) -> None:
    """Free a context and its batch (either may be NULL / None)."""
    if batch is not None:
        llama_cpp.llama_batch_free(batch)
    if ctx:
        llama_cpp.llama_free(ctx)
