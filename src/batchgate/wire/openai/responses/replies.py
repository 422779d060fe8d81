"""Replies both ways: the canonical response -> a Responses API ``response``
object (the OpenAI dialect's output lines), and an upstream's ``response``
object -> the canonical response."""

from __future__ import annotations

import json
from typing import Any

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions.access import TranslationError, _dict, _list, _str
from batchgate.wire.openai.chat_completions.inbound import effort_for_budget
from batchgate.wire.openai.chat_completions.outbound import _tool_call_to_wire
from batchgate.wire.openai.chat_completions.replies import usage_from_openai
from batchgate.wire.openai.responses.outbound import text_config, tool_choice_to_wire, tool_to_wire


def usage_to_responses(usage: chat.Usage) -> dict[str, Any]:
    """Canonical usage in the Responses API's terms: ``input_tokens``
    includes cached input, ``output_tokens`` includes reasoning."""
    cached = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    input_tokens = usage.input_tokens + cached + written
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": input_tokens + usage.output_tokens,
    }


def response_to_responses(
    response: chat.ChatResponse,
    request: chat.ChatRequest,
    *,
    response_id: str,
    created: int,
) -> dict[str, Any]:
    """The ``response`` object for ``response``, echoing ``request``'s
    settings as OpenAI does. Item ids derive from ``response_id``, so the
    same row renders the same bytes on every download."""
    incomplete = response.stop_reason == "max_tokens"
    choice = request.tool_choice
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else "completed",
        "completed_at": None if incomplete else created,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.system_text(),
        "max_output_tokens": request.max_tokens,
        "model": response.model,
        "output": _output_items(response, response_id.removeprefix("resp_")),
        "parallel_tool_calls": not (choice is not None and choice.disable_parallel_tool_use),
        "previous_response_id": None,
        "reasoning": {"effort": _reasoning_effort(request.thinking), "summary": None},
        "store": False,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": text_config(request.response_format),
        "tool_choice": "auto" if choice is None else tool_choice_to_wire(choice),
        "tools": [tool_to_wire(tool) for tool in request.tools or []],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": "disabled",
        "usage": usage_to_responses(response.usage),
        "user": request.user,
        "metadata": request.metadata or {},
    }


def _reasoning_effort(thinking: chat.Thinking | None) -> str | None:
    if thinking is None:
        return None
    return "none" if thinking.type == "disabled" else effort_for_budget(thinking.budget_tokens)


def _output_items(response: chat.ChatResponse, token: str) -> list[dict[str, Any]]:
    """Reasoning and function call items in reply order, and one message
    holding every text, where its first text was: after any reasoning."""
    output: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []
    for index, block in enumerate(response.content):
        if isinstance(block, chat.ThinkingBlock):
            output.append(
                {
                    "id": f"rs_{token}_{index}",
                    "type": "reasoning",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": block.thinking}],
                    "status": "completed",
                }
            )
        elif isinstance(block, chat.TextBlock):
            texts.append(_text_part(block.text, refused=response.stop_reason == "refusal"))
        elif isinstance(block, chat.ToolUseBlock):
            output.append(_function_call_item(block, f"fc_{token}_{index}"))
    if texts:
        message = {
            "id": f"msg_{token}",
            "type": "message",
            "role": "assistant",
            "status": "incomplete" if response.stop_reason == "max_tokens" else "completed",
            "content": texts,
        }
        at = next((i for i, item in enumerate(output) if item["type"] != "reasoning"), len(output))
        output.insert(at, message)
    return output


def _text_part(text: str, *, refused: bool) -> dict[str, Any]:
    if refused:
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _function_call_item(block: chat.ToolUseBlock, item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": block.id,
        "name": block.name,
        "arguments": _tool_call_to_wire(block)["function"]["arguments"],
        "status": "completed",
    }


def response_from_responses(body: object, *, request: chat.ChatRequest) -> chat.ChatResponse:
    """An upstream's ``response`` object as a canonical reply."""
    obj = _dict(body, "response")
    status = obj.get("status")
    if status == "failed":
        error = obj.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        raise TranslationError(f"the upstream response failed: {message}", "response.error")
    content: list[chat.ContentBlock] = []
    refused = False
    for i, raw in enumerate(_list(obj.get("output") or [], "response.output")):
        p = f"response.output[{i}]"
        item = _dict(raw, p)
        kind = item.get("type")
        if kind == "reasoning":
            content.extend(_reasoning_blocks(item, p))
        elif kind == "message":
            blocks, refusal = _message_blocks(item, p)
            content.extend(blocks)
            refused = refused or refusal
        elif kind == "function_call":
            content.append(_tool_use_block(item, p, i))
    return chat.ChatResponse(
        id=str(obj.get("id") or "resp"),
        model=str(obj.get("model") or request.model),
        content=content,
        stop_reason=_stop_reason(obj, content, refused),
        usage=usage_from_openai(obj.get("usage")),
    )


def _reasoning_blocks(item: dict[str, Any], p: str) -> list[chat.ContentBlock]:
    parts = item.get("content") or item.get("summary") or []
    text = "".join(
        _str(part.get("text") or "", f"{p}.content")
        for part in _list(parts, f"{p}.content")
        if isinstance(part, dict)
    )
    return [chat.ThinkingBlock(thinking=text)] if text else []


def _message_blocks(item: dict[str, Any], p: str) -> tuple[list[chat.ContentBlock], bool]:
    """A message item's texts, and whether one of them is a refusal."""
    blocks: list[chat.ContentBlock] = []
    refused = False
    for j, raw in enumerate(_list(item.get("content") or [], f"{p}.content")):
        part = _dict(raw, f"{p}.content[{j}]")
        if part.get("type") == "refusal":
            refused = True
            text = _str(part.get("refusal") or "", f"{p}.content[{j}].refusal")
        else:
            text = _str(part.get("text") or "", f"{p}.content[{j}].text")
        if text:
            blocks.append(chat.TextBlock(text=text))
    return blocks, refused


def _tool_use_block(item: dict[str, Any], p: str, index: int) -> chat.ToolUseBlock:
    arguments = _str(item.get("arguments") or "{}", f"{p}.arguments")
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    return chat.ToolUseBlock(
        id=_str(item.get("call_id") or item.get("id") or f"call_{index}", f"{p}.call_id"),
        name=_str(item.get("name"), f"{p}.name"),
        input=parsed if isinstance(parsed, dict) else {"_raw": arguments},
    )


def _stop_reason(
    obj: dict[str, Any], content: list[chat.ContentBlock], refused: bool
) -> chat.StopReason:
    stop_reason: chat.StopReason = "end_turn"
    if any(isinstance(block, chat.ToolUseBlock) for block in content):
        stop_reason = "tool_use"
    if refused:
        stop_reason = "refusal"
    details = obj.get("incomplete_details")
    if obj.get("status") == "incomplete" and isinstance(details, dict):
        if details.get("reason") == "max_output_tokens":
            stop_reason = "max_tokens"
        elif details.get("reason") == "content_filter":
            stop_reason = "refusal"
    return stop_reason
