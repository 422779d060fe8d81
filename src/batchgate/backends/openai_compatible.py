"""Backend for any server speaking OpenAI Chat Completions: vLLM, SGLang,
llama-server, Ollama, OpenAI itself.

Options (in the model's config table)::

    base_url = "http://127.0.0.1:8000/v1"   # required; /chat/completions etc. are appended
    api_key_env = "OPENAI_API_KEY"          # optional; local servers need no key
    api_key = "..."                         # allowed, but keeps a secret in the file
    upstream_model = "Qwen/Qwen2.5-7B"      # default: the model's own name
    timeout = 600                           # seconds per call
    supports_reasoning_effort = false       # send thinking as reasoning_effort; false: it errors
    max_tokens_field = "max_tokens"         # "max_completion_tokens" for OpenAI o-series
    supports_tools = true                   # false: requests with tools error at once
    supports_images = true                  # false: requests with images error at once
    supports_pdfs = false                   # true: inline PDFs go as file parts (OpenAI)
    max_context = 32768                     # optional, reported in capabilities
    headers = { "X-Title" = "batchgate" }   # optional extra headers
    extra_body = { chat_template_kwargs = { enable_thinking = false } }
    native_endpoints = ["embeddings", "completions", "responses"]   # default: []

``extra_body`` supplies defaults merged into every call (chat and the
native endpoints below); the request's own fields win. What the translation
drops (metadata, cache_control) is listed in :mod:`chat_completions`; a
request asking for thinking from a model without
``supports_reasoning_effort`` never gets here (the worker's capability check
ends it ``errored``).

``native_endpoints`` names the other OpenAI endpoints the upstream serves
itself. A raw prompt (a ``/v1/completions`` line's) and a request whose
reply echoes its settings (a ``/v1/responses`` line's) go to the
upstream's ``/completions`` / ``/responses`` when listed (a request the
endpoint cannot carry, such as one with stop sequences for ``/responses``,
still goes through chat), and through ``/chat/completions`` otherwise.
Embeddings have no chat fallback: the model serves embeddings only when
``"embeddings"`` is listed, and its requests go to ``/embeddings``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import Field

from batchgate import config
from batchgate.backends import base, http_client, openai_bodies
from batchgate.canonical import chat, embeddings
from batchgate.domain.endpoints import Endpoint
from batchgate.domain.states import RequestKind
from batchgate.wire.openai import chat_completions

NativeEndpoint = Literal["embeddings", "completions", "responses"]
NativeChatEndpoint = Literal["completions", "responses"]
_NATIVE = {"completions": Endpoint.COMPLETIONS, "responses": Endpoint.RESPONSES}


def _native_endpoint(request: chat.ChatRequest) -> NativeChatEndpoint | None:
    """The upstream endpoint that honours what ``request`` means more closely
    than chat completions, if it serves it: a raw prompt is continued as it
    is only by ``/completions``; settings the reply echoes are applied as
    given by ``/responses``."""
    if request.raw_prompt:
        return "completions"
    if request.settings_echoed:
        return "responses"
    return None


class Options(openai_bodies.WireOptions):
    """The connection, and the request-shaping switches every OpenAI
    upstream shares (``openai_bodies.WireOptions``)."""

    base_url: str
    api_key_env: str | None = None
    api_key: str | None = None
    upstream_model: str | None = None
    timeout: float = Field(default=600.0, gt=0)
    native_endpoints: list[NativeEndpoint] = Field(default_factory=list)


class OpenAICompatibleBackend:
    def __init__(self, model: config.ModelConfig, options: Options) -> None:
        self._options = options
        self._upstream_model = options.upstream_model or model.name
        self._base_url = options.base_url.rstrip("/")
        self._native = frozenset(options.native_endpoints)
        api_key = http_client.resolve_api_key(
            model, api_key=options.api_key, api_key_env=options.api_key_env
        )
        self._headers = openai_bodies.api_headers(api_key, options)
        self._client = http_client.make_client(model, timeout=options.timeout)
        self.capabilities = _capabilities(options)

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        native = _native_endpoint(request)
        if native is not None and native in self._native:
            try:
                return await self._call_chat(_NATIVE[native], request)
            except chat_completions.TranslationError:
                pass  # that endpoint cannot carry it: chat completions can
        try:
            return await self._call_chat(Endpoint.CHAT_COMPLETIONS, request)
        except chat_completions.TranslationError as exc:
            raise openai_bodies.unsupported(exc) from None

    async def _call_chat(self, endpoint: Endpoint, request: chat.ChatRequest) -> chat.ChatResponse:
        """``request`` on the upstream's ``endpoint``; TranslationError
        (before any call) if that endpoint cannot carry it."""
        body = self._body(endpoint, request)
        reply = await http_client.post_json(self._client, self._url(endpoint), body, self._headers)
        return openai_bodies.chat_reply(endpoint, reply, request)

    async def embed(self, request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse:
        """Only for models whose upstream serves ``/embeddings`` (the worker
        checks ``capabilities.serves`` first)."""
        body = self._body(Endpoint.EMBEDDINGS, request)
        reply = await http_client.post_json(
            self._client, self._url(Endpoint.EMBEDDINGS), body, self._headers
        )
        response = openai_bodies.read_reply(Endpoint.EMBEDDINGS, reply, request)
        assert isinstance(response, embeddings.EmbeddingResponse)
        return response

    def _body(
        self, endpoint: Endpoint, request: chat.ChatRequest | embeddings.EmbeddingRequest
    ) -> dict[str, object]:
        return openai_bodies.request_body(
            endpoint, request, upstream_model=self._upstream_model, options=self._options
        )

    def _url(self, endpoint: Endpoint) -> str:
        # base_url ends in /v1 (as OpenAI SDKs take it): the endpoint's path after it.
        return self._base_url + endpoint.value.removeprefix("/v1")

    async def aclose(self) -> None:
        await self._client.aclose()


def _capabilities(options: Options) -> base.Capabilities:
    serves = {RequestKind.CHAT}
    if "embeddings" in options.native_endpoints:
        serves.add(RequestKind.EMBEDDINGS)
    return dataclasses.replace(openai_bodies.capabilities(options), serves=frozenset(serves))


def capabilities(model: config.ModelConfig) -> base.Capabilities:
    """Registry hook: what ``model`` honours, without building a client."""
    return _capabilities(http_client.parse_options(Options, model))


def create(model: config.ModelConfig) -> base.Backend:
    return OpenAICompatibleBackend(model, http_client.parse_options(Options, model))
