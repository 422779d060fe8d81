"""The canonical chat request and response that every backend speaks.

The shape is Anthropic's Messages API (content blocks, a separate ``system``,
``stop_sequences``, ``stop_reason``), because it is the richer of the two wire
shapes: Chat Completions maps onto it without loss for the features batchgate
serves. Dialects translate their wire bodies into :class:`ChatRequest` at submit
time (so bad input is rejected before anything is stored), the store keeps the
canonical JSON, and backends never see a wire dialect.

Translation to and from Chat Completions lives beside it, in
``chat_completions.py``: both the OpenAI dialect and the OpenAI-compatible
backend need it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

# Wire bodies are validated strictly: ``"5"`` is not a valid ``max_tokens``.
# Integers stay valid for float fields (``temperature: 1``).
_STRICT = ConfigDict(extra="forbid", strict=True)


class TextBlock(BaseModel):
    model_config = _STRICT
    type: Literal["text"] = "text"
    text: str
    cache_control: dict[str, Any] | None = None
    citations: list[dict[str, Any]] | None = None


class ImageSource(BaseModel):
    model_config = _STRICT
    type: Literal["base64", "url"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None

    @pydantic.model_validator(mode="after")
    def _complete(self) -> ImageSource:
        if self.type == "base64" and (self.data is None or self.media_type is None):
            raise ValueError("a base64 image source needs both 'data' and 'media_type'")
        if self.type == "url" and self.url is None:
            raise ValueError("a url image source needs 'url'")
        return self


class ImageBlock(BaseModel):
    model_config = _STRICT
    type: Literal["image"] = "image"
    source: ImageSource
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(BaseModel):
    # Replies carry extra fields on tool_use blocks (``caller``); passing a
    # reply back as conversation history must not be refused.
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(BaseModel):
    model_config = _STRICT
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(BaseModel):
    model_config = _STRICT
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(BaseModel):
    model_config = _STRICT
    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]

    def blocks(self) -> list[ContentBlock]:
        """The content as a list of blocks (a plain string is one text block)."""
        if isinstance(self.content, str):
            return [TextBlock(text=self.content)]
        return list(self.content)


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @pydantic.model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("tool_choice of type 'tool' needs the tool's 'name'")
        return self


class Thinking(BaseModel):
    model_config = _STRICT
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    display: str | None = None

    @pydantic.model_validator(mode="after")
    def _budget(self) -> Thinking:
        if self.type == "enabled" and (self.budget_tokens is None or self.budget_tokens < 1024):
            raise ValueError("thinking of type 'enabled' needs budget_tokens of at least 1024")
        return self


Origin = Literal["completions", "responses"]


class ChatRequest(BaseModel):
    """One chat request, in Messages-API terms.

    Only ``model``, ``max_tokens`` and ``messages`` are required. ``seed`` and
    ``response_format`` are extensions that carry the Chat Completions
    parameters of the same name through to backends that honour them.
    """

    model_config = _STRICT
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    # Accepted for compatibility; a batch is never streamed and has its own tier.
    service_tier: str | None = None
    stream: Literal[False] | None = None
    # The OpenAI endpoint a request was written for when it was not chat
    # (``/v1/completions``, ``/v1/responses`` lines). Its meaning is in the
    # fields above; an upstream that has that endpoint is called on it
    # natively, and the dialect renders the reply in that endpoint's shape.
    origin: Origin | None = None
    # OpenAI's end-user identifier (a ``/v1/responses`` line's ``user``),
    # echoed in the reply object; no backend reads it. Like ``origin``, not
    # a Messages parameter.
    user: str | None = None

    def system_text(self) -> str | None:
        """The system prompt as one string (text blocks joined), or None."""
        if self.system is None:
            return None
        if isinstance(self.system, str):
            return self.system
        return "\n\n".join(block.text for block in self.system)


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class Usage(BaseModel):
    """Messages-API usage: ``input_tokens`` excludes cached input, which is
    counted in the two cache fields."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    # Of ``output_tokens``, how many were reasoning (OpenAI reports it; the
    # Messages API does not, so Anthropic-shaped results leave it out).
    reasoning_tokens: int | None = None


class ChatResponse(BaseModel):
    """One assistant reply, in Messages-API terms (what backends return)."""

    id: str
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage

    def to_message(self) -> dict[str, Any]:
        """The Anthropic ``message`` object for this reply."""
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [block.model_dump(exclude_none=True) for block in self.content],
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.usage.model_dump(exclude_none=True, exclude={"reasoning_tokens"}),
        }

    def text(self) -> str:
        """All text blocks joined: the reply as a plain string."""
        return "".join(block.text for block in self.content if isinstance(block, TextBlock))
