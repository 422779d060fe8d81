"""OpenAI endpoints as an upstream: the body a canonical request is sent as,
and the reader of each endpoint's reply. Shared by the real-time backend
(``openai_compatible``: one call per request) and the provider-batch codec
(``openai_batch``: one input line per request, one output line per reply),
so a request goes out, and its usage and finish reason come back, the same
way on both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from batchgate import canonical
from batchgate.backends import base, http_client
from batchgate.canonical import chat, embeddings
from batchgate.domain.endpoints import Endpoint
from batchgate.domain.states import RequestKind
from batchgate.wire.openai import chat_completions, completions
from batchgate.wire.openai import embeddings as openai_embeddings
from batchgate.wire.openai import responses as responses_api


class WireOptions(BaseModel):
    """The model entry's settings for what its requests look like upstream
    (a real-time call's body and a batch line's ``body`` alike)."""

    model_config = ConfigDict(extra="forbid")
    supports_reasoning_effort: bool = False
    max_tokens_field: chat_completions.MaxTokensField = "max_tokens"
    supports_tools: bool = True
    supports_images: bool = True
    supports_pdfs: bool = False
    max_context: int | None = Field(default=None, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)


def api_headers(api_key: str | None, options: WireOptions) -> dict[str, str]:
    """The headers of every call to an OpenAI upstream (real-time calls,
    Files and Batches alike): the entry's own, and the key as a bearer token."""
    headers = dict(options.headers)
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def request_body(
    endpoint: Endpoint,
    request: canonical.Request,
    *,
    upstream_model: str,
    options: WireOptions,
) -> dict[str, Any]:
    """``request`` as ``endpoint``'s body, over the entry's ``extra_body``
    defaults (the request's own fields win). Raises
    ``chat_completions.TranslationError`` for a request the endpoint cannot
    carry (a chat request for ``/v1/embeddings``, stop sequences for
    ``/v1/responses``, a conversation for ``/v1/completions``, ...)."""
    if isinstance(request, embeddings.EmbeddingRequest):
        if endpoint is not Endpoint.EMBEDDINGS:
            raise chat_completions.TranslationError(
                f"an embeddings request cannot be sent to {endpoint.value}", "input"
            )
        body = openai_embeddings.request_to_openai(request, upstream_model=upstream_model)
    elif endpoint is Endpoint.EMBEDDINGS:
        raise chat_completions.TranslationError(
            "a chat request cannot be sent to /v1/embeddings", "messages"
        )
    elif endpoint is Endpoint.COMPLETIONS:
        body = completions.request_to_completions(request, upstream_model=upstream_model)
    elif endpoint is Endpoint.RESPONSES:
        body = responses_api.request_to_responses(
            request,
            upstream_model=upstream_model,
            reasoning_effort=options.supports_reasoning_effort,
        )
    else:
        body = chat_completions.request_to_chat_completions(
            request,
            upstream_model=upstream_model,
            reasoning_effort=options.supports_reasoning_effort,
            max_tokens_field=options.max_tokens_field,
        )
    return {**options.extra_body, **body}


# What each endpoint's reply is, for the message when one cannot be read.
_WHAT = {
    Endpoint.CHAT_COMPLETIONS: "a chat completion",
    Endpoint.COMPLETIONS: "a text completion",
    Endpoint.RESPONSES: "a response object",
    Endpoint.EMBEDDINGS: "an embeddings list",
}
_READERS: dict[Endpoint, Callable[..., canonical.Response]] = {
    Endpoint.CHAT_COMPLETIONS: chat_completions.response_from_chat_completion,
    Endpoint.COMPLETIONS: completions.response_from_completion,
    Endpoint.RESPONSES: responses_api.response_from_responses,
    Endpoint.EMBEDDINGS: openai_embeddings.response_from_openai,
}


def read_reply(endpoint: Endpoint, reply: object, request: canonical.Request) -> canonical.Response:
    """``endpoint``'s reply to ``request`` as a canonical response; one it
    cannot read is a final error saying what was expected
    (``base.BackendError``, 502: the upstream's fault)."""
    if (endpoint is Endpoint.EMBEDDINGS) != isinstance(request, embeddings.EmbeddingRequest):
        raise http_client.unreadable_reply(
            _WHAT[endpoint], f"the request is not one {endpoint.value} answers"
        )
    try:
        return _READERS[endpoint](reply, request=request)
    except chat_completions.TranslationError as exc:
        raise http_client.unreadable_reply(
            _WHAT[endpoint], f"{exc.message} ({exc.param})"
        ) from None


def unsupported(exc: chat_completions.TranslationError) -> base.UnsupportedRequest:
    """A request the endpoint cannot carry: a final error on the row."""
    return base.UnsupportedRequest(f"{exc.message} ({exc.param})")


def capabilities(options: WireOptions, endpoint: Endpoint | None = None) -> base.Capabilities:
    """What an OpenAI upstream honours under ``options``. ``endpoint``: the
    one endpoint every request goes to (a batch upstream's); None for the
    real-time backend, which sends chat to chat completions. An embeddings
    endpoint serves embeddings only; ``/v1/responses`` has no stop sequences;
    ``/v1/completions`` carries one text prompt, nothing else."""
    if endpoint is Endpoint.EMBEDDINGS:
        return base.Capabilities(serves=frozenset({RequestKind.EMBEDDINGS}))
    text_only = endpoint is Endpoint.COMPLETIONS
    return base.Capabilities(
        tools=options.supports_tools and not text_only,
        images=options.supports_images and not text_only,
        pdfs=options.supports_pdfs and not text_only,
        thinking=options.supports_reasoning_effort and not text_only,
        stop_sequences=endpoint is not Endpoint.RESPONSES,
        max_context=options.max_context,
        serves=frozenset({RequestKind.CHAT}),
    )


def chat_reply(endpoint: Endpoint, reply: object, request: chat.ChatRequest) -> chat.ChatResponse:
    """A chat endpoint's reply (the real-time backend's chat calls)."""
    response = read_reply(endpoint, reply, request)
    assert isinstance(response, chat.ChatResponse)
    return response
