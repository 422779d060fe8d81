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

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from batchgate import config
from batchgate.backends import base, http_client
from batchgate.canonical import chat, embeddings
from batchgate.domain.states import RequestKind
from batchgate.wire.openai import chat_completions, completions
from batchgate.wire.openai import embeddings as openai_embeddings
from batchgate.wire.openai import responses as responses_api

NativeEndpoint = Literal["embeddings", "completions", "responses"]
NativeChatEndpoint = Literal["completions", "responses"]


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


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str
    api_key_env: str | None = None
    api_key: str | None = None
    upstream_model: str | None = None
    timeout: float = Field(default=600.0, gt=0)
    supports_reasoning_effort: bool = False
    max_tokens_field: chat_completions.MaxTokensField = "max_tokens"
    supports_tools: bool = True
    supports_images: bool = True
    supports_pdfs: bool = False
    max_context: int | None = Field(default=None, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    native_endpoints: list[NativeEndpoint] = Field(default_factory=list)


class OpenAICompatibleBackend:
    def __init__(self, model: config.ModelConfig, options: Options) -> None:
        self._options = options
        self._upstream_model = options.upstream_model or model.name
        self._base_url = options.base_url.rstrip("/")
        self._url = self._base_url + "/chat/completions"
        self._native = frozenset(options.native_endpoints)
        api_key = http_client.resolve_api_key(
            model, api_key=options.api_key, api_key_env=options.api_key_env
        )
        self._headers = dict(options.headers)
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._client = http_client.make_client(model, timeout=options.timeout)
        self.capabilities = _capabilities(options)

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        endpoint = _native_endpoint(request)
        if endpoint is not None and endpoint in self._native:
            native = await self._complete_natively(request, endpoint)
            if native is not None:
                return native
        try:
            body = chat_completions.request_to_chat_completions(
                request,
                upstream_model=self._upstream_model,
                reasoning_effort=self._options.supports_reasoning_effort,
                max_tokens_field=self._options.max_tokens_field,
            )
        except chat_completions.TranslationError as exc:
            raise base.UnsupportedRequest(f"{exc.message} ({exc.param})") from None
        reply = await http_client.post_json(
            self._client, self._url, self._with_extra(body), self._headers
        )
        return _read(
            "a chat completion", chat_completions.response_from_chat_completion, reply, request
        )

    async def _complete_natively(
        self, request: chat.ChatRequest, endpoint: NativeChatEndpoint
    ) -> chat.ChatResponse | None:
        """The request on the upstream's own ``/completions`` or
        ``/responses``; None if that endpoint cannot carry it."""
        try:
            if endpoint == "completions":
                body = completions.request_to_completions(
                    request, upstream_model=self._upstream_model
                )
            else:
                body = responses_api.request_to_responses(
                    request,
                    upstream_model=self._upstream_model,
                    reasoning_effort=self._options.supports_reasoning_effort,
                )
        except chat_completions.TranslationError:
            return None
        reply = await http_client.post_json(
            self._client, f"{self._base_url}/{endpoint}", self._with_extra(body), self._headers
        )
        if endpoint == "completions":
            return _read("a text completion", completions.response_from_completion, reply, request)
        return _read("a response object", responses_api.response_from_responses, reply, request)

    async def embed(self, request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse:
        """Only for models whose upstream serves ``/embeddings`` (the worker
        checks ``capabilities.serves`` first)."""
        body = openai_embeddings.request_to_openai(request, upstream_model=self._upstream_model)
        reply = await http_client.post_json(
            self._client, f"{self._base_url}/embeddings", self._with_extra(body), self._headers
        )
        return _read("an embeddings list", openai_embeddings.response_from_openai, reply, request)

    def _with_extra(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` over the model entry's ``extra_body`` defaults (the
        request's own fields win), for every endpoint alike."""
        return {**self._options.extra_body, **body}

    async def aclose(self) -> None:
        await self._client.aclose()


_Reply = TypeVar("_Reply")


def _read(what: str, reader: Callable[..., _Reply], reply: object, request: object) -> _Reply:
    """An upstream's reply read by ``reader``; one it cannot read is a final
    error saying what was expected."""
    try:
        return reader(reply, request=request)
    except chat_completions.TranslationError as exc:
        raise http_client.unreadable_reply(what, f"{exc.message} ({exc.param})") from None


def _capabilities(options: Options) -> base.Capabilities:
    return base.Capabilities(
        tools=options.supports_tools,
        images=options.supports_images,
        pdfs=options.supports_pdfs,
        thinking=options.supports_reasoning_effort,
        stop_sequences=True,
        max_context=options.max_context,
        serves=frozenset(
            {RequestKind.CHAT}
            | ({RequestKind.EMBEDDINGS} if "embeddings" in options.native_endpoints else set())
        ),
    )


def capabilities(model: config.ModelConfig) -> base.Capabilities:
    """Registry hook: what ``model`` honours, without building a client."""
    return _capabilities(http_client.parse_options(Options, model))


def create(model: config.ModelConfig) -> base.Backend:
    return OpenAICompatibleBackend(model, http_client.parse_options(Options, model))
