"""Backend for Anthropic's Messages API (or anything speaking it).

Options (in the model's config table)::

    base_url = "https://api.anthropic.com"  # /v1/messages is appended
    api_key_env = "ANTHROPIC_API_KEY"       # default; the env var must be set
    api_key = "..."                         # allowed, but keeps a secret in the file
    anthropic_version = "2023-06-01"
    anthropic_beta = ["..."]                # optional anthropic-beta header values
    upstream_model = "claude-..."           # default: the model's own name
    timeout = 600                           # seconds per call
    max_context = 200000                    # optional, reported in capabilities

The canonical request already is a Messages body (``document`` blocks,
PDFs included, go as they are). Dropped on the way: the
Chat Completions extensions ``seed`` and ``response_format`` (Messages has no
such fields and rejects unknown ones), and every ``metadata`` key except
``user_id`` (the only one Messages accepts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from batchgate import config
from batchgate.backends import base, http_client
from batchgate.canonical import chat


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = "https://api.anthropic.com"
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    api_key: str | None = None
    anthropic_version: str = "2023-06-01"
    anthropic_beta: list[str] = Field(default_factory=list)
    upstream_model: str | None = None
    timeout: float = Field(default=600.0, gt=0)
    max_context: int | None = Field(default=None, ge=1)


# Content block fields the canonical types know; newer API versions may add
# more, which are not part of a batch result. A text block's ``citations``
# (its sources in the request's documents) are kept as the API sent them.
_BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("type", "text", "citations"),
    "tool_use": ("type", "id", "name", "input"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
}
# Stop reasons added after the canonical set, mapped to their nearest meaning.
_STOP_REASONS = {"model_context_window_exceeded": "max_tokens"}


def messages_body(request: chat.ChatRequest, *, upstream_model: str) -> dict[str, Any]:
    """The Messages API body for ``request``."""
    body = request.model_dump(
        mode="json", exclude_none=True, exclude={"seed", "response_format", "stream"}
    )
    body["model"] = upstream_model
    user_id = (request.metadata or {}).get("user_id")
    body.pop("metadata", None)
    if isinstance(user_id, str):
        body["metadata"] = {"user_id": user_id}
    return body


def response_from_message(reply: Any) -> chat.ChatResponse:
    """A canonical response from a Messages API reply (unknown block types
    are an error: dropping them would change what the model said)."""
    if not isinstance(reply, dict) or not isinstance(reply.get("content"), list):
        raise ValueError("reply has no content list")
    content = []
    for block in reply["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in _BLOCK_FIELDS:
            raise ValueError(f"unsupported content block type {kind!r}")
        content.append({key: block[key] for key in _BLOCK_FIELDS[kind] if key in block})
    stop_reason = reply.get("stop_reason")
    if isinstance(stop_reason, str):
        stop_reason = _STOP_REASONS.get(stop_reason, stop_reason)
    return chat.ChatResponse.model_validate(
        {
            "id": reply.get("id", ""),
            "model": reply.get("model", ""),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": reply.get("stop_sequence"),
            "usage": reply.get("usage") or {},
        }
    )


class AnthropicBackend:
    def __init__(self, model: config.ModelConfig, options: Options) -> None:
        self._upstream_model = options.upstream_model or model.name
        self._url = options.base_url.rstrip("/") + "/v1/messages"
        api_key = http_client.resolve_api_key(
            model, api_key=options.api_key, api_key_env=options.api_key_env
        )
        self._headers = api_headers(
            api_key, version=options.anthropic_version, beta=options.anthropic_beta
        )
        self._client = http_client.make_client(model, timeout=options.timeout)
        self.capabilities = _capabilities(options)

    async def complete(self, request: chat.ChatRequest) -> chat.ChatResponse:
        body = messages_body(request, upstream_model=self._upstream_model)
        reply = await http_client.post_json(self._client, self._url, body, self._headers)
        try:
            return response_from_message(reply)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise http_client.unreadable_reply("a Messages response", str(exc)) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def api_headers(api_key: str | None, *, version: str, beta: Sequence[str]) -> dict[str, str]:
    """The headers of every Anthropic API call (Messages and Message Batches)."""
    headers = {"anthropic-version": version}
    if api_key:
        headers["x-api-key"] = api_key
    if beta:
        headers["anthropic-beta"] = ",".join(beta)
    return headers


def messages_capabilities(max_context: int | None) -> base.Capabilities:
    """What the Messages API honours (a Message Batch's requests are
    Messages bodies too)."""
    return base.Capabilities(
        tools=True,
        images=True,
        pdfs=True,
        thinking=True,
        stop_sequences=True,
        max_context=max_context,
    )


def _capabilities(options: Options) -> base.Capabilities:
    return messages_capabilities(options.max_context)


def capabilities(model: config.ModelConfig) -> base.Capabilities:
    """Registry hook: what ``model`` honours, without building a client."""
    return _capabilities(http_client.parse_options(Options, model))


def create(model: config.ModelConfig) -> base.Backend:
    return AnthropicBackend(model, http_client.parse_options(Options, model))
