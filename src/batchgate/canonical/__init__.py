"""The canonical request of either kind, as the store keeps it.

A request is a :class:`chat.ChatRequest` or an
:class:`embeddings.EmbeddingRequest`; the stored JSON says which by its
``kind`` field (embeddings requests carry ``"kind": "embeddings"``; chat
requests, including every row stored before embeddings existed, have none).
"""

from __future__ import annotations

from typing import Any

import orjson

from batchgate.canonical import chat, embeddings
from batchgate.domain.states import RequestKind

Request = chat.ChatRequest | embeddings.EmbeddingRequest
Response = chat.ChatResponse | embeddings.EmbeddingResponse


def kind_of(request: Request) -> RequestKind:
    if isinstance(request, embeddings.EmbeddingRequest):
        return RequestKind.EMBEDDINGS
    return RequestKind.CHAT


# Rows stored before requests said what they mean named the OpenAI endpoint
# a line came in on instead (``origin``); this is what each one meant.
_LEGACY_ORIGIN = {"completions": "raw_prompt", "responses": "settings_echoed"}


def load(params: str | bytes | dict[str, Any]) -> Request:
    """The canonical request stored as ``params``."""
    obj = params if isinstance(params, dict) else orjson.loads(params)
    if obj.get("kind") == RequestKind.EMBEDDINGS.value:
        return embeddings.EmbeddingRequest.model_validate(obj)
    if "origin" in obj:
        meaning = _LEGACY_ORIGIN[obj["origin"]]
        obj = {key: value for key, value in obj.items() if key != "origin"}
        obj[meaning] = True
    return chat.ChatRequest.model_validate(obj)


def dump(request: Request) -> str:
    """The JSON the store keeps for ``request`` (``load`` reads it back)."""
    return request.model_dump_json(exclude_none=True)


def token_counts(response: Response) -> tuple[int, int, int, int]:
    """(input, output, cached, reasoning) tokens as OpenAI reports them:
    input includes cached input (read or written), output includes reasoning.
    What a served request records, whichever path served it."""
    if isinstance(response, embeddings.EmbeddingResponse):
        return response.usage.input_tokens, 0, 0, 0
    usage: chat.Usage = response.usage
    cached = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return (
        usage.input_tokens + cached + written,
        usage.output_tokens,
        cached,
        usage.reasoning_tokens or 0,
    )
