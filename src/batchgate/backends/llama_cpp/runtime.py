"""Thin glue over llama-cpp-python's low-level (ctypes) API.

Owns the chat engine's native objects — context, batch — and frees them in
:meth:`Runtime.close`; the model is shared (see :mod:`.model`). Everything
here must run on the engine thread: a llama.cpp context is not thread-safe.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import llama_cpp
import numpy

from batchgate.backends import base
from batchgate.backends.llama_cpp import model, options

# ctypes objects are untyped for mypy; the aliases say what each one holds.
Sampler = Any  # llama_sampler *, or None for greedy
Token = int


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


class Runtime:
    """One chat context with ``n_seq_max`` KV sequences over a shared model
    (the caller owns the model and releases it after :meth:`close`)."""

    def __init__(self, opts: options.EngineOptions, loaded: model.Model) -> None:
        """With a vocab-only ``loaded`` model (see :func:`model.acquire`): the
        tokenizer and chat template alone, no context: only :meth:`render` and
        :meth:`tokenize` work, which is what counting prompt tokens at submit
        time needs."""
        self._loaded = loaded
        self._model: Any = loaded.ptr
        self.vocab: Any = loaded.vocab
        self._ctx: Any = None
        self._batch: Any = None
        try:
            self._load(opts, loaded.path)
        except BaseException:
            self.close()
            raise

    def _load(self, opts: options.EngineOptions, model_path: Path) -> None:
        if self._loaded.vocab_only:
            self._template = self._load_template()
            return
        if self._loaded.encoder_only:
            raise RuntimeError(
                f"{model_path} is an encoder-only (embedding) model and cannot generate text"
            )

        n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        self.n_ctx = min(opts.n_ctx, n_ctx_train) if n_ctx_train > 0 else opts.n_ctx
        n_seq = opts.n_seq_max()
        # Total KV = per-sequence context x sequences, so every sequence gets its
        # full n_ctx whether or not the cache is unified.
        params = model.context_params(
            opts,
            n_ctx=self.n_ctx * n_seq,
            n_batch=opts.n_batch,
            n_seq_max=n_seq,
            kv_unified=opts.kv_unified,
        )
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {model_path}")
        # llama.cpp may round the context; trust what it actually allocated.
        self.n_ctx = min(self.n_ctx, llama_cpp.llama_n_ctx_seq(self._ctx))
        self.memory: Any = llama_cpp.llama_get_memory(self._ctx)
        self.n_batch = opts.n_batch
        self._batch = llama_cpp.llama_batch_init(opts.n_batch, 0, 1)
        self._template = self._load_template()

    # -- prompt -------------------------------------------------------------

    def _load_template(self) -> jinja2.Template | None:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        if not raw:
            return None
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        return env.from_string(raw.decode("utf-8"))

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text: the GGUF's own Jinja chat template, rendered as
        Hugging Face would (so e.g. SmolLM2's default system prompt applies)."""
        if self._template is None:
            return self._render_builtin(messages)
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self.piece(llama_cpp.llama_vocab_bos(self.vocab), special=True),
                eos_token=self.piece(llama_cpp.llama_vocab_eos(self.vocab), special=True),
                raise_exception=_raise_exception,
                strftime_now=lambda fmt: datetime.now().strftime(fmt),
            )
        except jinja2.TemplateError as exc:
            raise base.UnsupportedRequest(
                f"the model's chat template rejected the messages: {exc}"
            ) from exc

    def _render_builtin(self, messages: list[dict[str, str]]) -> str:
        """No template in the GGUF: llama.cpp's built-in ChatML formatter."""
        # The byte strings must outlive the call: keep them in a list.
        encoded = [(m["role"].encode(), m["content"].encode()) for m in messages]
        chat_array = (llama_cpp.llama_chat_message * len(encoded))()
        for i, (role, content) in enumerate(encoded):
            chat_array[i].role = role
            chat_array[i].content = content
        size = 2 * sum(len(c) + len(r) for r, c in encoded) + 256
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_chat_apply_template(
                b"chatml", chat_array, len(encoded), True, buf, size
            )
            if n < 0:
                raise base.UnsupportedRequest("llama.cpp could not apply a chat template")
            if n <= size:
                return buf.raw[:n].decode("utf-8", errors="replace")
            size = n
        raise RuntimeError("chat template output kept growing")

    def tokenize(self, text: str) -> list[Token]:
        bos_text = self.piece(llama_cpp.llama_vocab_bos(self.vocab), special=True)
        # Add BOS only if the model wants it and the template did not write it.
        add_special = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab)) and not (
            bos_text and text.startswith(bos_text)
        )
        # parse_special: the template's control tokens (<|im_start|>) are real tokens.
        return self._loaded.tokenize(text, add_special=add_special, parse_special=True)

    def piece(self, token: Token, *, special: bool = False) -> str:
        return self.piece_bytes(token, special=special).decode("utf-8", errors="replace")

    def piece_bytes(self, token: Token, *, special: bool = False) -> bytes:
        """A token's bytes: possibly part of a UTF-8 character."""
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def is_end_of_generation(self, token: Token) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # -- sampling -----------------------------------------------------------

    def new_sampler(
        self, temperature: float, top_p: float | None, top_k: int | None, seed: int | None
    ) -> Sampler:
        """llama.cpp's sampler chain for one sequence (free with free_sampler);
        None for greedy, which :meth:`sample_outputs` does itself."""
        if temperature <= 0.0:
            return None
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if top_k:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
        if top_p is not None and top_p < 1.0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(top_p, 1))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(temperature))
        dist_seed = llama_cpp.LLAMA_DEFAULT_SEED if seed is None else seed & 0xFFFFFFFF
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(dist_seed))
        return chain

    def sample_outputs(self, picks: Sequence[tuple[Sampler, int]]) -> list[Token]:
        """The next token of each ``(sampler, batch index)`` after a decode.

        Greedy (``None``) is an argmax over the logits row, read in place:
        llama.cpp's greedy sampler first copies the whole vocabulary into a
        candidates array, per sequence. Both pick the first of equal maxima,
        so the tokens are the same."""
        n_vocab = self._loaded.n_vocab
        tokens: list[Token] = []
        for sampler, index in picks:
            if sampler is not None:
                tokens.append(llama_cpp.llama_sampler_sample(sampler, self._ctx, index))
                continue
            row = llama_cpp.llama_get_logits_ith(self._ctx, index)
            logits = numpy.ctypeslib.as_array(row, shape=(n_vocab,))
            tokens.append(int(logits.argmax()))
        return tokens

    @staticmethod
    def free_sampler(sampler: Sampler) -> None:
        if sampler is not None:
            llama_cpp.llama_sampler_free(sampler)

    # -- batch and KV cache ---------------------------------------------------

    def batch_clear(self) -> None:
        self._batch.n_tokens = 0

    def batch_add(self, token: Token, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index (the output index if logits)."""
        batch = self._batch
        i: int = batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens = i + 1
        return i

    def decode(self) -> int:
        """Run the batch; 0 on success (see llama_decode for the others)."""
        result: int = llama_cpp.llama_decode(self._ctx, self._batch)
        return result

    def seq_clear(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def seq_copy_prefix(self, src: int, dst: int, n_tokens: int, unified: bool) -> None:
        """Make ``dst`` hold the first ``n_tokens`` of ``src``'s KV cache."""
        llama_cpp.llama_memory_seq_rm(self.memory, dst, -1, -1)
        if unified:
            # Shared cells: metadata only, no data is copied.
            llama_cpp.llama_memory_seq_cp(self.memory, src, dst, 0, n_tokens)
        else:
            # Separate streams: llama.cpp copies whole streams only (at the
            # next decode); drop what lies beyond the shared part afterwards.
            llama_cpp.llama_memory_seq_cp(self.memory, src, dst, -1, -1)
            llama_cpp.llama_memory_seq_rm(self.memory, dst, n_tokens, -1)

    def close(self) -> None:
        model.free_context(self._ctx, self._batch)
        self._ctx, self._batch = None, None
