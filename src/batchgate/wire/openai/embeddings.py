"""Translation between the canonical embeddings types and OpenAI's
``/v1/embeddings`` wire shape (pure, no I/O), both ways:

* :func:`request_from_openai` reads an input line's ``body`` (strictly, naming
  the path of anything wrong) into an :class:`embeddings.EmbeddingRequest`;
* :func:`response_to_openai` renders a canonical reply as the embeddings
  ``list`` object of the output file, floats or base64 per ``encoding_format``;
* :func:`request_to_openai` / :func:`response_from_openai` are the same two
  shapes seen from the other side, for upstreams that serve ``/embeddings``.

OpenAI's own rules for the body are kept: ``input`` is a non-empty string, a
list of at most 2048 non-empty strings, a token array, or a list of at most
2048 token arrays; ``dimensions`` is at least 1; ``user`` is accepted and
dropped.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pydantic

from batchgate.canonical import embeddings
from batchgate.wire.openai.chat_completions.access import (
    TranslationError,
    _dict,
    _int,
    _list,
    _only_keys,
    _required,
    _str,
)

MAX_INPUTS = 2048  # items in one request's ``input`` array (OpenAI's limit)

_KEYS = {"model", "input", "encoding_format", "dimensions", "user"}
_FORMATS = ("float", "base64")


def request_from_openai(body: object, *, path: str = "body") -> embeddings.EmbeddingRequest:
    obj = _dict(body, path)
    _only_keys(obj, _KEYS, path)
    params: dict[str, Any] = {
        "model": _str(_required(obj, "model", path), f"{path}.model"),
        "input": _inputs(_required(obj, "input", path), f"{path}.input"),
    }
    if obj.get("dimensions") is not None:
        dimensions = _int(obj["dimensions"], f"{path}.dimensions")
        if dimensions < 1:
            raise TranslationError("dimensions must be at least 1", f"{path}.dimensions")
        params["dimensions"] = dimensions
    if obj.get("encoding_format") is not None:
        fmt = _str(obj["encoding_format"], f"{path}.encoding_format")
        if fmt not in _FORMATS:
            raise TranslationError(
                f"encoding_format must be one of {', '.join(_FORMATS)}", f"{path}.encoding_format"
            )
        params["encoding_format"] = fmt
    if obj.get("user") is not None:
        _str(obj["user"], f"{path}.user")
    try:
        return embeddings.EmbeddingRequest.model_validate(params)
    except pydantic.ValidationError as exc:  # pragma: no cover - checked above
        raise TranslationError(exc.errors()[0]["msg"], path) from None


def _inputs(value: object, param: str) -> list[str] | list[list[int]]:
    """``input`` as a list of strings or a list of token arrays."""
    if isinstance(value, str):
        if not value:
            raise TranslationError("input must not be an empty string", param)
        return [value]
    items = _list(value, param)
    if not items:
        raise TranslationError("input must not be an empty array", param)
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return [_tokens(items, param)]  # one token array
    if len(items) > MAX_INPUTS:
        raise TranslationError(f"input may hold at most {MAX_INPUTS} items", param)
    if isinstance(items[0], str):
        texts = [_str(item, f"{param}[{i}]") for i, item in enumerate(items)]
        for i, text in enumerate(texts):
            if not text:
                raise TranslationError("input strings must not be empty", f"{param}[{i}]")
        return texts
    return [_tokens(_list(item, f"{param}[{i}]"), f"{param}[{i}]") for i, item in enumerate(items)]


def _tokens(items: list[Any], param: str) -> list[int]:
    if not items:
        raise TranslationError("a token array must not be empty", param)
    tokens = [_int(item, f"{param}[{i}]") for i, item in enumerate(items)]
    for i, token in enumerate(tokens):
        if token < 0:
            raise TranslationError("token ids must not be negative", f"{param}[{i}]")
    return tokens


def encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def decode_vector(value: object, param: str) -> list[float]:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise TranslationError("embedding is not valid base64", param) from None
        if len(raw) % 4:
            raise TranslationError("a base64 embedding must hold float32 values", param)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    items = _list(value, param)
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise TranslationError(
                "embedding values must be numbers", f"{param}[{i}]", "invalid_type"
            )
    return [float(item) for item in items]


def response_to_openai(
    response: embeddings.EmbeddingResponse, request: embeddings.EmbeddingRequest
) -> dict[str, Any]:
    """The ``list`` object ``/v1/embeddings`` answers with."""
    tokens = response.usage.input_tokens
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode_vector(vector, request.encoding_format),
            }
            for index, vector in enumerate(response.vectors)
        ],
        "model": response.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def request_to_openai(
    request: embeddings.EmbeddingRequest, *, upstream_model: str
) -> dict[str, Any]:
    """The body sent to an upstream's ``/embeddings``. Vectors are asked for
    as base64: a quarter of the bytes of JSON floats, and exact."""
    body: dict[str, Any] = {
        "model": upstream_model,
        "input": request.input,
        "encoding_format": "base64",
    }
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def response_from_openai(
    body: object, *, request: embeddings.EmbeddingRequest
) -> embeddings.EmbeddingResponse:
    """An upstream's embeddings ``list``, in input order (by ``index``)."""
    obj = _dict(body, "response")
    data = _list(_required(obj, "data", "response"), "response.data")
    vectors: dict[int, list[float]] = {}
    for i, raw in enumerate(data):
        item = _dict(raw, f"response.data[{i}]")
        index = _int(item.get("index", i), f"response.data[{i}].index")
        embedding = _required(item, "embedding", f"response.data[{i}]")
        vectors[index] = decode_vector(embedding, f"response.data[{i}].embedding")
    if sorted(vectors) != list(range(len(request.input))):
        raise TranslationError(
            f"expected {len(request.input)} embeddings, one per input, got indexes "
            f"{sorted(vectors)[:10]}",
            "response.data",
        )
    usage = _dict(obj.get("usage") or {}, "response.usage")
    tokens = usage.get("prompt_tokens", usage.get("total_tokens", 0)) or 0
    return embeddings.EmbeddingResponse(
        model=str(obj.get("model") or request.model),
        vectors=[vectors[i] for i in range(len(request.input))],
        usage=embeddings.EmbeddingUsage(input_tokens=_int(tokens, "response.usage.prompt_tokens")),
    )
