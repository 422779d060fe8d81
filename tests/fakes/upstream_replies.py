"""What the fake upstream says: deterministic replies in both wire shapes.

Pure functions over parsed request bodies, kept apart from the HTTP server in
:mod:`tests.fakes.upstream` so the rules are easy to read and to rely on:

* Reply text is ``"echo: <last user text>"``; after a tool result it is
  ``"tool result: <result text>"``.
* A request with tools (and tool choice not ``none``) whose last turn is user
  text gets a tool call instead when the tool choice forces one or the text
  contains the word ``tool``. The call is to the forced tool or else the first
  tool, with input ``{"query": <last user text>}``.
* Tokens are whitespace-separated words. ``prompt_tokens`` / ``input_tokens``
  counts the words of every text in the system prompt and the messages
  (including tool arguments and results); the reply's tokens are its words
  (for a tool call: the words of the JSON-encoded input).
* Stop sequences cut the reply before the earliest match (``stop_sequence``;
  the matched string is reported like vLLM's ``stop_reason``). ``max_tokens``
  then keeps the first ``max_tokens`` words (``length`` / ``max_tokens``).
* Thinking requested (``reasoning_effort`` or ``thinking: enabled``) adds
  reasoning ``"thinking about: <last user text>"``.
* A ``document`` block with ``citations.enabled`` gets, after the reply
  text, a text block citing it the way the Messages API does: a
  ``char_location`` over the first sentence of a text document, a
  ``page_location`` of page 1 of a PDF, a ``content_block_location`` of the
  first block of a content document. Document blocks are validated like
  the real API's (source type, media type, required fields).
* The fingerprint of a request, used to script faults per request and to
  group the call log, is its last user text (tests make it unique per
  custom_id). A tool-result follow-up keeps its conversation's fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any

ANTHROPIC_KEYS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "stream",
        "service_tier",
        "container",
        "mcp_servers",
    }
)
_NOT_TEXT_KEYS = frozenset(
    {"role", "type", "id", "tool_call_id", "tool_use_id", "name", "media_type", "data", "url"}
)


@dataclasses.dataclass(frozen=True)
class Conversation:
    """What the reply rules need from a request, in either wire shape."""

    last_user_text: str
    tool_result: str | None  # text of a trailing tool result, if the last turn is one
    tool_names: list[str]
    forced_tool: str | None  # tool name the choice forces ("" = any tool)
    tools_allowed: bool
    max_tokens: int | None
    stops: list[str]
    thinking: bool
    prompt_tokens: int


@dataclasses.dataclass(frozen=True)
class Reply:
    text: str
    tool_name: str | None
    tool_input: dict[str, Any] | None
    finish: str  # "stop" | "stop_sequence" | "length" | "tool"
    matched_stop: str | None
    thinking: str | None
    prompt_tokens: int
    completion_tokens: int


def count_words(value: Any) -> int:
    """Words in every text-bearing string of a JSON value."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(item) for item in value)
    if isinstance(value, dict):
        return sum(count_words(v) for k, v in value.items() if k not in _NOT_TEXT_KEYS)
    return 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def openai_conversation(body: dict[str, Any]) -> Conversation:
    messages = body.get("messages") or []
    last_user = ""
    for message in messages:
        if message.get("role") == "user":
            last_user = _text_of(message.get("content"))
    tool_result = None
    if messages and messages[-1].get("role") == "tool":
        tool_result = _text_of(messages[-1].get("content"))
    choice = body.get("tool_choice")
    forced = None
    if choice == "required":
        forced = ""
    elif isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name", "")
    stop = body.get("stop")
    tools = body.get("tools") or []
    return Conversation(
        last_user_text=last_user,
        tool_result=tool_result,
        tool_names=[(t.get("function") or {}).get("name", "") for t in tools],
        forced_tool=forced,
        tools_allowed=choice != "none",
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stops=[stop] if isinstance(stop, str) else list(stop or []),
        thinking=bool(body.get("reasoning_effort")) and body.get("reasoning_effort") != "none",
        prompt_tokens=count_words(messages),
    )


def anthropic_conversation(body: dict[str, Any]) -> Conversation:
    messages = body.get("messages") or []
    last_user = ""
    for message in messages:
        if message.get("role") == "user" and _text_of(message.get("content")):
            last_user = _text_of(message.get("content"))
    tool_result = None
    if messages and messages[-1].get("role") == "user":
        content = messages[-1].get("content")
        results = [
            b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        if isinstance(content, list) and results:
            tool_result = " ".join(
                r["content"] if isinstance(r.get("content"), str) else _text_of(r.get("content"))
                for r in results
            )
    choice = body.get("tool_choice") or {}
    forced = {"any": "", "tool": choice.get("name", "")}.get(choice.get("type", ""))
    return Conversation(
        last_user_text=last_user,
        tool_result=tool_result,
        tool_names=[t.get("name", "") for t in body.get("tools") or []],
        forced_tool=forced,
        tools_allowed=choice.get("type") != "none",
        max_tokens=body.get("max_tokens"),
        stops=list(body.get("stop_sequences") or []),
        thinking=(body.get("thinking") or {}).get("type") == "enabled",
        prompt_tokens=count_words(messages) + count_words(body.get("system")),
    )


def reply_for(conv: Conversation) -> Reply:
    thinking = f"thinking about: {conv.last_user_text}" if conv.thinking else None
    wants_tool = conv.forced_tool is not None or "tool" in conv.last_user_text.lower()
    if conv.tool_names and conv.tools_allowed and conv.tool_result is None and wants_tool:
        name = conv.forced_tool or conv.tool_names[0]
        tool_input = {"query": conv.last_user_text}
        return Reply(
            text="",
            tool_name=name,
            tool_input=tool_input,
            finish="tool",
            matched_stop=None,
            thinking=thinking,
            prompt_tokens=conv.prompt_tokens,
            completion_tokens=count_words(json.dumps(tool_input)),
        )
    if conv.tool_result is not None:
        text = f"tool result: {conv.tool_result}"
    else:
        text = f"echo: {conv.last_user_text}"
    finish, matched = "stop", None
    hits = [(text.find(s), s) for s in conv.stops if s and s in text]
    if hits:
        position, matched = min(hits)
        text, finish = text[:position], "stop_sequence"
    words = text.split()
    if conv.max_tokens is not None and len(words) > conv.max_tokens:
        text, finish, matched = " ".join(words[: conv.max_tokens]), "length", None
    return Reply(
        text=text,
        tool_name=None,
        tool_input=None,
        finish=finish,
        matched_stop=matched,
        thinking=thinking,
        prompt_tokens=conv.prompt_tokens,
        completion_tokens=len(text.split()),
    )


def _call_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


def openai_completion(body: dict[str, Any], reply: Reply, seq: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": _call_id("call_", f"{seq}:{reply.tool_input}"),
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": json.dumps(reply.tool_input)},
            }
        ]
    if reply.thinking is not None:
        message["reasoning_content"] = reply.thinking
    finish = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}
    return {
        "id": f"chatcmpl-fake-{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish[reply.finish],
                "logprobs": None,
                "stop_reason": reply.matched_stop,  # as vLLM reports it
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _documents(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every document block of the request, in order (their index is the
    ``document_index`` citations refer to)."""
    return [
        block
        for message in body.get("messages") or []
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "document"
    ]


def _citation(index: int, document: dict[str, Any]) -> dict[str, Any]:
    source = document["source"]
    common = {"document_index": index, "document_title": document.get("title")}
    if source["type"] == "text":
        sentence = source["data"].split(".")[0]
        return {
            "type": "char_location",
            "cited_text": sentence,
            **common,
            "start_char_index": 0,
            "end_char_index": len(sentence),
            "file_id": None,
        }
    if source["type"] == "content":
        first = source["content"] if isinstance(source["content"], str) else source["content"][0]
        return {
            "type": "content_block_location",
            "cited_text": first if isinstance(first, str) else first.get("text", ""),
            **common,
            "start_block_index": 0,
            "end_block_index": 1,
            "file_id": None,
        }
    return {
        "type": "page_location",
        "cited_text": "page one",
        **common,
        "start_page_number": 1,
        "end_page_number": 2,
        "file_id": None,
    }


def _cited_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": f"document {index} says so", "citations": [_citation(index, doc)]}
        for index, doc in enumerate(_documents(body))
        if (doc.get("citations") or {}).get("enabled")
    ]


def anthropic_message(body: dict[str, Any], reply: Reply, seq: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.thinking is not None:
        content.append({"type": "thinking", "thinking": reply.thinking, "signature": "fake-sig"})
    if reply.text:
        content.append({"type": "text", "text": reply.text, "citations": None})
        content.extend(_cited_blocks(body))
    if reply.tool_name is not None:
        content.append(
            {
                "type": "tool_use",
                "id": _call_id("toolu_", f"{seq}:{reply.tool_input}"),
                "name": reply.tool_name,
                "input": reply.tool_input,
            }
        )
    stop = {"stop": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens"}
    return {
        "id": f"msg_fake{seq}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": stop.get(reply.finish, "tool_use"),
        "stop_sequence": reply.matched_stop,
        "usage": {
            "input_tokens": reply.prompt_tokens,
            "output_tokens": reply.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "batch",
        },
    }


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def validate_openai(body: Any) -> str | None:
    """Why this body is not a Chat Completions request, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: must be a non-empty array"
    return None


def validate_anthropic(body: Any) -> str | None:
    """Why this body is not a Messages request, or None (unknown top-level
    fields are rejected, as the real API does)."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for key in body:
        if key not in ANTHROPIC_KEYS:
            return f"{key}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return "max_tokens: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: must be a non-empty array"
    if isinstance(body.get("metadata"), dict) and set(body["metadata"]) - {"user_id"}:
        return "metadata: Extra inputs are not permitted"
    for index, document in enumerate(_documents(body)):
        problem = _document_problem(document)
        if problem is not None:
            return f"document {index}: {problem}"
    return None


# The real API's document sources: required fields, and the media type.
_DOCUMENT_SOURCES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "text": (("media_type", "data"), "text/plain"),
    "base64": (("media_type", "data"), "application/pdf"),
    "url": (("url",), None),
    "content": (("content",), None),
}


def _document_problem(document: dict[str, Any]) -> str | None:
    extra = set(document) - {"type", "source", "title", "context", "citations", "cache_control"}
    if extra:
        return f"{sorted(extra)[0]}: Extra inputs are not permitted"
    source = document.get("source")
    if not isinstance(source, dict) or source.get("type") not in _DOCUMENT_SOURCES:
        return "source: must be a text, base64, url or content source"
    needs, media_type = _DOCUMENT_SOURCES[source["type"]]
    missing = [name for name in needs if not source.get(name)]
    if missing:
        return f"source.{missing[0]}: Field required"
    if media_type is not None and source.get("media_type") != media_type:
        return f"source.media_type: must be {media_type}"
    return None
