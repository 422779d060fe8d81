"""Backend for any server speaking OpenAI Chat Completions: vLLM, SGLang,
llama-server, Ollama, OpenAI itself.

Options (in the model's config table)::

    base_url = "http://127.0.0.1:8000/v1"   # required; /chat/completions is appended
    api_key_env = "OPENAI_API_KEY"          # optional; local servers need no key
    api_key = "..."                         # allowed, but keeps a secret in the file
    upstream_model = "Qwen/Qwen2.5-7B"      # default: the model's own name
    timeout = 600                           # seconds per call
    supports_reasoning_effort = false       # send thinking as reasoning_effort
    max_tokens_field = "max_tokens"         # "max_completion_tokens" for OpenAI o-series
    supports_tools = true                   # false: requests with tools error at once
    supports_images = true                  # false: requests with images error at once
    max_context = 32768                     # optional, reported in capabilities
    headers = { "X-Title" = "batchgate" }   # optional extra headers
    extra_body = { chat_template_kwargs = { enable_thinking = false } }

``extra_body`` supplies defaults merged into every call; the request's own
fields win. What the translation drops (metadata, cache_control, thinking
without ``supports_reasoning_effort``) is listed in :mod:`chat_completions`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from batchgate import chat, chat_completions, config
from batchgate.backends import base, http_client


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
    max_context: int | None = Field(default=None, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)


class OpenAICompatibleBackend:
    def __init__(self, model: config.ModelConfig, options: Options) -> None:
        self._options = options
        self._upstream_model = options.upstream_model or model.name
        self._url = options.base_url.rstrip("/") + "/chat/completions"
        api_key = http_client.resolve_api_key(
            model, api_key=options.api_key, api_key_env=options.api_key_env
        )
        self._headers = dict(options.headers)
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._client = http_client.make_client(model, timeout=options.timeout)
        self.capabilities = base.Capabilities(
            tools=options.supports_tools,
            images=options.supports_images,
            thinking=options.supports_reasoning_effort,
            stop_sequences=True,
            max_context=options.max_context,
        )

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
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
            self._client, self._url, {**self._options.extra_body, **body}, self._headers
        )
        try:
            return chat_completions.response_from_chat_completion(reply, request=request)
        except chat_completions.TranslationError as exc:
            raise http_client.unreadable_reply(
                "a chat completion", f"{exc.message} ({exc.param})"
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def create(model: config.ModelConfig) -> base.Backend:
    return OpenAICompatibleBackend(model, http_client.parse_options(Options, model))
