"""The canonical embeddings request and response every embedding backend speaks.

Beside :mod:`batchgate.canonical.chat`, this is the second kind of work a batch can hold.
Dialects translate their wire bodies (OpenAI's ``/v1/embeddings``) into
:class:`EmbeddingRequest` at submit time, the store keeps the canonical JSON,
and backends answer with :class:`EmbeddingResponse`. How vectors are encoded
on the wire (``encoding_format`` float or base64) is the dialect's business:
backends always return floats.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid", strict=True)


class EmbeddingRequest(BaseModel):
    """Inputs to embed, always a list: of strings, or of token-id arrays."""

    model_config = _STRICT
    kind: Literal["embeddings"] = "embeddings"
    model: str
    input: list[str] | list[list[int]] = Field(min_length=1)
    # Shorten each vector to this many dimensions (then re-normalise), as
    # OpenAI's text-embedding-3 models do; None keeps the model's own size.
    dimensions: int | None = Field(default=None, ge=1)
    # How the client wants the vectors on the wire; only the dialect reads it
    # (backends always return floats).
    encoding_format: Literal["float", "base64"] = "float"


class EmbeddingUsage(BaseModel):
    input_tokens: int = 0


class EmbeddingResponse(BaseModel):
    """One vector per input, in input order, L2-normalised."""

    model: str
    vectors: list[list[float]]
    usage: EmbeddingUsage
