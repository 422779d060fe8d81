"""The canonical chat request -> a Chat Completions body (what
OpenAI-compatible servers are sent)."""

from __future__ import annotations

import json
from typing import Any

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions.access import MaxTokensField, TranslationError
from batchgate.wire.openai.chat_completions.inbound import effort_for_budget

# --------------------------------------------------------------------------
# Canonical request -> Chat Completions body (for OpenAI-compatible servers)


def request_to_chat_completions(
    req: chat.ChatRequest,
    *,
    upstream_model: str,
    reasoning_effort: bool = False,
    max_tokens_field: MaxTokensField = "max_tokens",
) -> dict[str, Any]:
    """The Chat Completions body for ``req``, addressed to ``upstream_model``.

        ``reasoning_effort``: the server accepts ``reasoning_effort``; otherwise
        ``thinking`` is dropped. ``max_tokens_field``: OpenAI's reasoning models
        only accept ``max_completion_tokens``; local servers all read ``max_tokens``.
        ``top_k`` goes out as a top-level extension field. ``metadata`` and
        ``cache_control`` are dropped; thinking blocks in earlier assistant turns
        are dropped (servers do not accept them back); a text document becomes a
    text part (:meth:`chat.DocumentBlock.prompt_text`). Raises
        :class:`TranslationError` for content Chat Completions cannot carry.
    """
    messages: list[dict[str, Any]] = []
    system = req.system_text()
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(req.messages):
        param = f"messages[{i}]"
        if message.role == "user":
            messages.extend(_user_to_wire(message, param))
        else:
            messages.append(_assistant_to_wire(message, param))
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": messages,
        max_tokens_field: req.max_tokens,
    }
    for key in ("temperature", "top_p", "top_k", "seed", "response_format"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)
    if req.tools:
        body["tools"] = [_tool_to_wire(tool, f"tools[{i}]") for i, tool in enumerate(req.tools)]
    if req.tool_choice is not None:
        body.update(_tool_choice_to_wire(req.tool_choice))
    if reasoning_effort and req.thinking is not None and req.thinking.type == "enabled":
        body["reasoning_effort"] = effort_for_budget(req.thinking.budget_tokens)
    return body


def _user_to_wire(message: chat.Message, param: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    # Tool results become ``tool`` messages, which must come straight after the
    # assistant's tool calls, so they go before the rest of the user turn.
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        p = f"{param}.content[{j}]"
        if isinstance(block, chat.ToolResultBlock):
            tool_messages.append(_tool_result_to_wire(block, p))
        elif isinstance(block, chat.TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, chat.ImageBlock):
            parts.append(_image_to_wire(block))
        elif isinstance(block, chat.DocumentBlock):
            parts.append(_document_to_wire(block, p))
        else:
            raise TranslationError(f"{block.type} blocks cannot appear in a user turn", p)
    out = tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool_result_to_wire(block: chat.ToolResultBlock, param: str) -> dict[str, Any]:
    if block.content is None or isinstance(block.content, str):
        text = block.content or ""
    else:
        if any(isinstance(part, chat.ImageBlock) for part in block.content):
            raise TranslationError("images in tool results are not supported", param)
        text = "\n\n".join(part.text for part in block.content if isinstance(part, chat.TextBlock))
    if block.is_error:
        # Chat Completions has no error flag on tool results; say it in words.
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _document_to_wire(block: chat.DocumentBlock, param: str) -> dict[str, Any]:
    """A text document as a text part (Chat Completions has no document
    part, nor a way to ask for citations); an inline PDF as a ``file`` part,
    which only upstreams that read PDFs get (the capability check)."""
    source = block.source
    if not source.is_pdf:
        return {"type": "text", "text": block.prompt_text()}
    if source.type == "url":
        raise TranslationError("a PDF by URL cannot be sent as a file part; send it inline", param)
    data_url = f"data:application/pdf;base64,{source.data or ''}"
    return {
        "type": "file",
        "file": {"filename": block.title or "document.pdf", "file_data": data_url},
    }


def _image_to_wire(block: chat.ImageBlock) -> dict[str, Any]:
    source = block.source
    if source.type == "base64":
        url = f"data:{source.media_type or 'image/png'};base64,{source.data or ''}"
    else:
        url = source.url or ""
    return {"type": "image_url", "image_url": {"url": url}}


def _assistant_to_wire(message: chat.Message, param: str) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, block in enumerate(message.blocks()):
        if isinstance(block, chat.TextBlock):
            texts.append(block.text)
        elif isinstance(block, chat.ToolUseBlock):
            tool_calls.append(_tool_call_to_wire(block))
        elif isinstance(block, chat.ThinkingBlock | chat.RedactedThinkingBlock):
            continue
        else:
            raise TranslationError(
                f"{block.type} blocks cannot appear in an assistant turn", f"{param}.content[{j}]"
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def _tool_call_to_wire(block: chat.ToolUseBlock) -> dict[str, Any]:
    raw = block.input.get("_raw") if set(block.input) == {"_raw"} else None
    # Arguments an upstream sent as invalid JSON were kept verbatim (see
    # response_from_chat_completion); send them back exactly as received.
    arguments = raw if isinstance(raw, str) else json.dumps(block.input, ensure_ascii=False)
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": arguments},
    }


def _tool_to_wire(tool: chat.Tool, param: str) -> dict[str, Any]:
    if tool.model_extra:
        kind = tool.model_extra.get("type")
        if kind not in (None, "custom"):
            raise TranslationError(f"tool type {kind!r} is not supported", param)
    fn: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        fn["description"] = tool.description
    return {"type": "function", "function": fn}


def _tool_choice_to_wire(choice: chat.ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if choice.type == "auto":
        out["tool_choice"] = "auto"
    elif choice.type == "none":
        out["tool_choice"] = "none"
    elif choice.type == "any":
        out["tool_choice"] = "required"
    else:
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    if choice.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False
    return out
