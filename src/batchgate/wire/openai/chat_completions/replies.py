"""Replies both ways: a server's chat completion -> the canonical
response, and the canonical response -> a ``chat.completion`` object."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions.access import (
    TranslationError,
    _dict,
    _int,
    _list,
    _required,
    _str,
)
from batchgate.wire.openai.chat_completions.inbound import _text_parts
from batchgate.wire.openai.chat_completions.outbound import _tool_call_to_wire

# --------------------------------------------------------------------------
# Chat Completions response -> canonical response


_FINISH_REASONS: dict[str, chat.StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def response_from_chat_completion(
    body: object, *, request: chat.ChatRequest | None = None
) -> chat.ChatResponse:
    """Translate a ``chat.completion`` object into a canonical response.

    ``stop_reason``: ``stop`` is ``end_turn`` unless the reply ended on one of
    ``request``'s stop sequences, which Chat Completions does not report. Two
    signals are used: the ``stop_reason`` (vLLM) or ``matched_stop`` (SGLang)
    field naming the matched string, or content ending with a stop sequence
    (servers configured to keep it), which is then cut off as Messages does.
    Without either, a stop-sequence match is indistinguishable from the end of
    the turn and reads as ``end_turn``.

    ``reasoning_content`` (vLLM, DeepSeek, llama-server) or ``reasoning``
    (Ollama, OpenRouter) becomes a leading thinking block. Tool call arguments
    that are not a JSON object are kept verbatim as ``{"_raw": arguments}`` so
    that the model's output is not lost (the request still succeeded).
    Missing ``usage`` counts as zero.
    """
    obj = _dict(body, "response")
    choices = _list(_required(obj, "choices", "response"), "response.choices")
    if not choices:
        raise TranslationError("choices is empty", "response.choices")
    choice = _dict(choices[0], "response.choices[0]")
    message = _dict(
        _required(choice, "message", "response.choices[0]"), "response.choices[0].message"
    )
    param = "response.choices[0].message"

    content: list[chat.ContentBlock] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append(chat.ThinkingBlock(thinking=reasoning))
    text = _response_text(message.get("content"), f"{param}.content")
    stop_reason, stop_sequence, text = _stop_reason(choice, text, request)
    if message.get("refusal"):
        text = (text or "") + _str(message["refusal"], f"{param}.refusal")
        stop_reason = "refusal"
    if text:
        content.append(chat.TextBlock(text=text))
    calls = message.get("tool_calls") or []
    for i, raw in enumerate(_list(calls, f"{param}.tool_calls")):
        content.append(_tool_use_from_response(raw, f"{param}.tool_calls[{i}]"))
    if calls and stop_reason == "end_turn":
        stop_reason = "tool_use"  # some servers say "stop" after tool calls

    return chat.ChatResponse(
        id=str(obj.get("id") or f"chatcmpl-{uuid.uuid4().hex}"),
        model=str(obj.get("model") or (request.model if request else "")),
        content=content,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=usage_from_openai(obj.get("usage")),
    )


def usage_from_openai(value: object) -> chat.Usage:
    """OpenAI usage (Chat Completions' ``prompt_tokens``/``completion_tokens``
    or the Responses API's ``input_tokens``/``output_tokens``, with their
    details) in Messages terms: cached input is counted apart from
    ``input_tokens``. Missing usage counts as zero."""
    usage = _dict(value or {}, "response.usage")
    responses_shape = "input_tokens" in usage
    names = (
        ("input_tokens", "output_tokens")
        if responses_shape
        else ("prompt_tokens", "completion_tokens")
    )
    details = (
        ("input_tokens_details", "output_tokens_details")
        if responses_shape
        else (
            "prompt_tokens_details",
            "completion_tokens_details",
        )
    )
    prompt = _int(usage.get(names[0]) or 0, f"response.usage.{names[0]}")
    output = _int(usage.get(names[1]) or 0, f"response.usage.{names[1]}")
    in_details = usage.get(details[0]) or {}
    out_details = usage.get(details[1]) or {}
    cached = in_details.get("cached_tokens") if isinstance(in_details, dict) else None
    reasoning = out_details.get("reasoning_tokens") if isinstance(out_details, dict) else None
    cached = cached if isinstance(cached, int) and 0 < cached <= prompt else None
    return chat.Usage(
        input_tokens=prompt - (cached or 0),
        output_tokens=output,
        cache_read_input_tokens=cached,
        reasoning_tokens=reasoning if isinstance(reasoning, int) and reasoning > 0 else None,
    )


def _response_text(value: object, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    # A few servers answer with content parts rather than a string.
    return "".join(part.text for part in _text_parts(value, param))


def _stop_reason(
    choice: Mapping[str, Any], text: str | None, request: chat.ChatRequest | None
) -> tuple[chat.StopReason, str | None, str | None]:
    finish = choice.get("finish_reason")
    reason: chat.StopReason = _FINISH_REASONS.get(finish, "end_turn") if finish else "end_turn"
    stops = (request.stop_sequences or []) if request else []
    if reason != "end_turn" or not stops:
        return reason, None, text
    named = choice.get("stop_reason", choice.get("matched_stop"))
    if isinstance(named, str) and named in stops:
        return "stop_sequence", named, text
    for stop in stops:
        if stop and text and text.endswith(stop):
            return "stop_sequence", stop, text[: -len(stop)]
    return reason, None, text


def _tool_use_from_response(value: object, param: str) -> chat.ToolUseBlock:
    call = _dict(value, param)
    fn = _dict(_required(call, "function", param), f"{param}.function")
    arguments = fn.get("arguments") or "{}"
    parsed: Any
    if isinstance(arguments, dict):  # Ollama has sent objects rather than strings
        parsed = arguments
    else:
        raw = _str(arguments, f"{param}.function.arguments")
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            parsed = {"_raw": raw}
    call_id = call.get("id")
    return chat.ToolUseBlock(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{uuid.uuid4().hex[:24]}",
        name=_str(_required(fn, "name", f"{param}.function"), f"{param}.function.name"),
        input=parsed,
    )


# --------------------------------------------------------------------------
# Canonical response -> chat.completion object (OpenAI dialect output)


_FINISH_FOR_STOP: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def response_to_chat_completion(
    resp: chat.ChatResponse,
    *,
    completion_id: str | None = None,
    created: int,
    model: str | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object for ``resp``.

    ``completion_id`` defaults to the response's id and ``model`` to its model.
    Thinking blocks are not part of a Chat Completions message and are left
    out. ``prompt_tokens`` counts cached input as Chat Completions does.
    """
    texts = [block.text for block in resp.content if isinstance(block, chat.TextBlock)]
    tool_calls = [
        _tool_call_to_wire(block) for block in resp.content if isinstance(block, chat.ToolUseBlock)
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = resp.usage
    cached = usage.cache_read_input_tokens or 0
    prompt_tokens = usage.input_tokens + cached + (usage.cache_creation_input_tokens or 0)
    usage_out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt_tokens + usage.output_tokens,
    }
    if cached:
        usage_out["prompt_tokens_details"] = {"cached_tokens": cached}
    if usage.reasoning_tokens:
        usage_out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return {
        "id": completion_id or resp.id,
        "object": "chat.completion",
        "created": created,
        "model": model or resp.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH_FOR_STOP.get(resp.stop_reason or "end_turn", "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage_out,
        "system_fingerprint": None,
    }
