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


class DocumentSource(BaseModel):
    """Where a document's content is: ``text`` (plain text inline),
    ``base64`` (a PDF inline), ``url`` (a PDF the model's API fetches) or
    ``content`` (text blocks, each one a citable chunk)."""

    model_config = _STRICT
    type: Literal["text", "base64", "url", "content", "file"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    content: str | list[TextBlock] | None = None
    file_id: str | None = None

    @pydantic.model_validator(mode="after")
    def _complete(self) -> DocumentSource:
        if self.type == "file":
            # Named here so the refusal says why rather than "not permitted".
            raise ValueError(
                "a file document source needs Anthropic's Files API, which batchgate does "
                "not serve; send the document inline (a text, base64 or url source)"
            )
        needs = _DOCUMENT_SOURCE_NEEDS[self.type]
        if any(getattr(self, name) is None for name in needs):
            fields = " and ".join(f"'{name}'" for name in needs)
            raise ValueError(f"a {self.type} document source needs {fields}")
        media_type = _DOCUMENT_MEDIA_TYPES.get(self.type)
        if media_type is not None and self.media_type != media_type:
            raise ValueError(
                f"a {self.type} document source has media_type '{media_type}', "
                f"got {self.media_type!r}"
            )
        return self

    @property
    def is_pdf(self) -> bool:
        """A PDF (inline or by URL): only a backend that reads PDFs can use it."""
        return self.type in ("base64", "url")


# Anthropic's document sources: the fields each needs, and the one media
# type each allows (text sources are plain text, base64 ones PDF).
_DOCUMENT_SOURCE_NEEDS: dict[str, tuple[str, ...]] = {
    "text": ("media_type", "data"),
    "base64": ("media_type", "data"),
    "url": ("url",),
    "content": ("content",),
}
_DOCUMENT_MEDIA_TYPES = {"text": "text/plain", "base64": "application/pdf"}


class CitationsConfig(BaseModel):
    model_config = _STRICT
    enabled: bool = False


class DocumentBlock(BaseModel):
    """An Anthropic ``document`` block: a file the prompt refers to, which
    the model may cite (``citations.enabled``). Anthropic upstreams get it
    as it is; every other backend gets a text document as prompt text
    (:meth:`prompt_text`), and cannot take a PDF (the worker's capability
    check ends such a request errored)."""

    model_config = _STRICT
    type: Literal["document"] = "document"
    source: DocumentSource
    title: str | None = None
    context: str | None = None
    citations: CitationsConfig | None = None
    cache_control: dict[str, Any] | None = None

    def prompt_text(self) -> str:
        """The document as text for a model that takes a plain prompt, in the
        tags Anthropic's long-context prompting guide uses. A PDF has no
        text form here: callers check :attr:`DocumentSource.is_pdf` first."""
        parts = ["<document>"]
        if self.title:
            parts.append(f"<source>{self.title}</source>")
        if self.context:
            parts.append(f"<context>{self.context}</context>")
        parts.append(f"<document_content>\n{self.text()}\n</document_content>")
        parts.append("</document>")
        return "\n".join(parts)

    def text(self) -> str:
        """The document's own text (empty for a PDF)."""
        source = self.source
        if source.type == "text":
            return source.data or ""
        if isinstance(source.content, str):
            return source.content
        return "\n\n".join(block.text for block in source.content or [])


ContentBlock = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock,
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
    # What a request means beyond the fields above, for backends that can
    # honour it more closely (never which endpoint a line came in on; the
    # batch's endpoint decides the reply's shape). Not Messages parameters.
    #
    # The one user message is text to continue as it is, with no chat
    # template around it (an OpenAI text-completion prompt).
    raw_prompt: bool | None = None
    # The reply echoes the request's settings (an OpenAI Response object
    # shows its reasoning, text format and tools), so they must be applied
    # as given: a reasoning effort the model cannot apply is refused, not
    # dropped, and an upstream that takes those settings natively gets them.
    settings_echoed: bool | None = None
    # OpenAI's end-user identifier (a ``/v1/responses`` line's ``user``),
    # echoed in the reply object; no backend reads it.
    user: str | None = None
    # True where ``max_tokens`` is the OpenAI endpoint's default, not the
    # client's choice: a model with a smaller context caps it instead of
    # refusing the request (backends/capability.py). Not a Messages parameter.
    max_tokens_defaulted: bool | None = None

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
