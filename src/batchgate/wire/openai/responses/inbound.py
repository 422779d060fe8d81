"""A Responses API request body -> the canonical chat request (the OpenAI
dialect's ``/v1/responses`` input lines)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions import access
from batchgate.wire.openai.chat_completions.inbound import (
    _image_from,
    _pdf_from,
    _tool_use,
    _Turns,
    check_dropped,
    common_params,
    thinking_for_effort,
    tool_choice_from,
    validated,
)

DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""``max_tokens`` when a line gives no ``max_output_tokens`` (Messages needs one)."""

_MAPPED = {
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    # Read by no backend; carried through for the Response object to echo.
    "metadata",
    "user",
}
# Accepted and dropped: they change nothing about the reply. ``store`` is
# moot (a batch's responses are kept as its output file, not retrievable by
# id), as are the prompt-cache hints.
_DROPPED = {
    "safety_identifier",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
}
# Accepted only at the value that changes nothing; anything else would be a
# setting silently lost.
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "previous_response_id": (None,),
    "conversation": (None,),
    "prompt": (None,),
    "background": (None, False),
    "stream": (None, False),
    "stream_options": (None,),
    "include": (None, []),
    "max_tool_calls": (None,),
    "top_logprobs": (None, 0),
    "truncation": (None, "disabled"),
    "context_management": (None, []),
}
_WHY = {
    "previous_response_id": "previous_response_id needs stored responses; send the "
    "conversation so far in input instead",
    "conversation": "conversations are not stored; send the conversation so far in input",
    "prompt": "prompt templates are not available; send the prompt in input and instructions",
    "background": "background mode does not apply inside a batch",
    "stream": "stream is not supported in a batch",
    "include": "include is not supported",
    "max_tool_calls": "max_tool_calls is not supported",
    "top_logprobs": "logprobs are not available",
    "truncation": "truncation 'auto' is not supported: a request longer than the "
    "model's context fails instead of being cut",
}
_KEYS = _MAPPED | _DROPPED | set(_NEUTRAL)
_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh"}


def request_from_responses(body: object, *, path: str = "body") -> chat.ChatRequest:
    """Translate a ``/v1/responses`` body; access.TranslationError names the first
    offending field."""
    obj = access._dict(body, path)
    access.check_arguments(obj, _KEYS, path)
    access.check_neutral(obj, _NEUTRAL, path, _WHY)
    check_dropped(obj, path, ("user", "safety_identifier", "service_tier", "prompt_cache_key"))

    system: list[chat.TextBlock] = []
    if obj.get("instructions") is not None:
        instructions = access._str(obj["instructions"], f"{path}.instructions")
        if instructions:
            system.append(chat.TextBlock(text=instructions))
    more_system, messages = _input_from(access._required(obj, "input", path), f"{path}.input")
    system.extend(more_system)
    max_tokens = DEFAULT_MAX_OUTPUT_TOKENS
    if obj.get("max_output_tokens") is not None:
        max_tokens = access._int(obj["max_output_tokens"], f"{path}.max_output_tokens")
        if max_tokens < 1:
            raise access.TranslationError(
                "max_output_tokens must be at least 1", f"{path}.max_output_tokens"
            )
    params = common_params(obj, path, max_tokens=max_tokens, system=system, messages=messages)
    params["settings_echoed"] = True
    if obj.get("text") is not None:
        response_format = _text_config(obj["text"], f"{path}.text")
        if response_format is not None:
            params["response_format"] = response_format
    if obj.get("reasoning") is not None:
        thinking = _reasoning(obj["reasoning"], max_tokens, f"{path}.reasoning")
        if thinking is not None:
            params["thinking"] = thinking
    if obj.get("tools") is not None:
        params["tools"] = _tools(obj["tools"], f"{path}.tools")
    choice = _tool_choice(obj, path)
    if choice is not None:
        params["tool_choice"] = choice
    for key in ("metadata", "user"):
        if obj.get(key) is not None:
            params[key] = obj[key]  # type-checked by check_dropped above
    return validated(params, path)


# --- input items


def _input_from(value: object, param: str) -> tuple[list[chat.TextBlock], list[chat.Message]]:
    if isinstance(value, str):
        if not value:
            raise access.TranslationError("input must not be empty", param)
        return [], [chat.Message(role="user", content=value)]
    items = access._list(value, param)
    if not items:
        raise access.TranslationError("input must not be empty", param)
    system: list[chat.TextBlock] = []
    turns = _Turns()
    for i, raw in enumerate(items):
        p = f"{param}[{i}]"
        item = access._dict(raw, p)
        kind = item.get("type", "message")
        kind = access._str(kind, f"{p}.type")
        if kind == "message":
            _message(item, p, system, turns)
        elif kind == "function_call":
            access._only_keys(item, {"type", "id", "call_id", "name", "arguments", "status"}, p)
            call = {
                "id": access._str(access._required(item, "call_id", p), f"{p}.call_id"),
                "function": {
                    "name": access._required(item, "name", p),
                    "arguments": access._required(item, "arguments", p),
                },
            }
            turns.add("assistant", [_tool_use(call, p)])
        elif kind == "function_call_output":
            access._only_keys(item, {"type", "id", "call_id", "output", "status"}, p)
            turns.add("user", [_tool_output(item, p)])
        elif kind == "reasoning":
            # An earlier turn's reasoning is the model's scratch work, kept by
            # OpenAI only to resume its own models; no other model reads it
            # back (Chat Completions servers refuse it), so it adds nothing.
            continue
        else:
            raise access.unsupported(f"input items of type {kind!r} are not supported", f"{p}.type")
    if not turns.turns:
        raise access.TranslationError("input must include a user or assistant message", param)
    return system, turns.messages()


_MESSAGE_KEYS = {"type", "role", "content", "id", "status", "phase"}


def _message(
    item: Mapping[str, Any], param: str, system: list[chat.TextBlock], turns: _Turns
) -> None:
    access._only_keys(item, _MESSAGE_KEYS, param)
    role = access._str(access._required(item, "role", param), f"{param}.role")
    content = access._required(item, "content", param)
    if role in ("system", "developer"):
        parts = _parts(content, f"{param}.content", "input")
        if any(isinstance(block, chat.DocumentBlock) for block in parts):
            # Messages takes documents in user turns only; dropping one
            # would answer without it.
            raise access.TranslationError(
                "input_file parts belong in user messages", f"{param}.content"
            )
        system.extend(block for block in parts if isinstance(block, chat.TextBlock))
    elif role == "user":
        blocks = _parts(content, f"{param}.content", "input")
        if not blocks:
            raise access.TranslationError("content must not be empty", f"{param}.content")
        turns.add("user", blocks)
    elif role == "assistant":
        blocks = _parts(content, f"{param}.content", "output")
        if blocks:  # Messages refuses empty turns; an empty one says nothing.
            turns.add("assistant", blocks)
    else:
        raise access.TranslationError(
            "role must be one of user, assistant, system, developer", f"{param}.role"
        )


def _parts(value: object, param: str, side: str) -> list[chat.ContentBlock]:
    """Content parts: ``input_text``/``input_image``/``input_file`` (a PDF)
    in user and system messages; ``output_text``/``refusal`` in earlier assistant messages."""
    if isinstance(value, str):
        return [chat.TextBlock(text=value)] if value else []
    blocks: list[chat.ContentBlock] = []
    for i, raw in enumerate(access._list(value, param)):
        p = f"{param}[{i}]"
        part = access._dict(raw, p)
        kind = access._str(access._required(part, "type", p), f"{p}.type")
        if kind in ("input_text", "output_text"):
            access._only_keys(part, {"type", "text", "annotations", "logprobs"}, p)
            blocks.append(
                chat.TextBlock(text=access._str(access._required(part, "text", p), f"{p}.text"))
            )
        elif kind == "refusal" and side == "output":
            access._only_keys(part, {"type", "refusal"}, p)
            blocks.append(
                chat.TextBlock(
                    text=access._str(access._required(part, "refusal", p), f"{p}.refusal")
                )
            )
        elif kind == "input_image" and side == "input":
            access._only_keys(part, {"type", "image_url", "detail", "file_id"}, p)
            if part.get("file_id") is not None:
                raise access.unsupported("images by file_id are not supported; send image_url", p)
            url = access._required(part, "image_url", p)
            blocks.append(_image_from({"url": url}, p))
        elif kind == "input_file" and side == "input":
            fields = {key: value for key, value in part.items() if key != "type"}
            blocks.append(_pdf_from(fields, p, by_url=True))
        else:
            raise access.unsupported(
                f"content parts of type {kind!r} are not supported here", f"{p}.type"
            )
    return blocks


def _tool_output(item: Mapping[str, Any], param: str) -> chat.ToolResultBlock:
    call_id = access._str(access._required(item, "call_id", param), f"{param}.call_id")
    output = access._required(item, "output", param)
    if isinstance(output, str):
        return chat.ToolResultBlock(tool_use_id=call_id, content=output)
    parts: list[chat.TextBlock | chat.ImageBlock] = []
    for block in _parts(output, f"{param}.output", "input"):
        if isinstance(block, chat.DocumentBlock):
            # Tool results carry text and images only; dropping the file
            # would answer without it.
            raise access.TranslationError(
                "input_file parts are not supported in a function_call_output", f"{param}.output"
            )
        if isinstance(block, chat.TextBlock | chat.ImageBlock):
            parts.append(block)
    return chat.ToolResultBlock(tool_use_id=call_id, content=parts)


# --- settings


def _text_config(value: object, param: str) -> dict[str, Any] | None:
    """``text.format`` as the canonical (Chat Completions) response_format."""
    text = access._dict(value, param)
    access._only_keys(text, {"format", "verbosity"}, param)
    verbosity = text.get("verbosity")
    if verbosity not in (None, "medium"):
        raise access.unsupported(
            "verbosity other than 'medium' is not supported", f"{param}.verbosity"
        )
    if text.get("format") is None:
        return None
    fmt = access._dict(text["format"], f"{param}.format")
    kind = access._str(access._required(fmt, "type", f"{param}.format"), f"{param}.format.type")
    if kind == "text":
        access._only_keys(fmt, {"type"}, f"{param}.format")
        return None
    if kind == "json_object":
        access._only_keys(fmt, {"type"}, f"{param}.format")
        return {"type": "json_object"}
    if kind == "json_schema":
        p = f"{param}.format"
        access._only_keys(fmt, {"type", "name", "schema", "description", "strict"}, p)
        schema: dict[str, Any] = {
            "name": access._str(access._required(fmt, "name", p), f"{p}.name"),
            "schema": access._dict(access._required(fmt, "schema", p), f"{p}.schema"),
        }
        if fmt.get("description") is not None:
            schema["description"] = access._str(fmt["description"], f"{p}.description")
        if fmt.get("strict") is not None:
            schema["strict"] = access._bool(fmt["strict"], f"{p}.strict")
        return {"type": "json_schema", "json_schema": schema}
    raise access.TranslationError(
        "text.format.type must be text, json_object or json_schema", f"{param}.format.type"
    )


def _reasoning(value: object, max_tokens: int, param: str) -> chat.Thinking | None:
    reasoning = access._dict(value, param)
    access._only_keys(reasoning, {"effort", "summary", "generate_summary"}, param)
    for key in ("summary", "generate_summary"):
        # Thinking is returned as a reasoning item in full; a summary of it
        # asks for nothing more.
        if reasoning.get(key) is not None:
            access._str(reasoning[key], f"{param}.{key}")
    if reasoning.get("effort") is None:
        return None
    effort = access._str(reasoning["effort"], f"{param}.effort")
    if effort not in _EFFORTS:
        raise access.TranslationError(
            f"effort must be one of {', '.join(sorted(_EFFORTS))}", f"{param}.effort"
        )
    # xhigh is above high: the largest budget there is.
    return thinking_for_effort("high" if effort == "xhigh" else effort, max_tokens, param)


def _tools(value: object, param: str) -> list[chat.Tool]:
    tools = []
    for i, raw in enumerate(access._list(value, param)):
        p = f"{param}[{i}]"
        item = access._dict(raw, p)
        kind = access._str(access._required(item, "type", p), f"{p}.type")
        if kind != "function":
            # Built-in tools (web_search, file_search, code_interpreter, ...)
            # run on OpenAI's side; no model here can call them.
            raise access.unsupported(
                f"built-in tool {kind!r} is not available; only function tools are", f"{p}.type"
            )
        access._only_keys(item, {"type", "name", "description", "parameters", "strict"}, p)
        spec: dict[str, Any] = {"name": access._str(access._required(item, "name", p), f"{p}.name")}
        if item.get("description") is not None:
            spec["description"] = access._str(item["description"], f"{p}.description")
        if item.get("parameters") is not None:
            spec["input_schema"] = access._dict(item["parameters"], f"{p}.parameters")
        if item.get("strict") is not None:
            access._bool(item["strict"], f"{p}.strict")
        tools.append(chat.Tool.model_validate(spec))
    return tools


def _tool_choice(obj: Mapping[str, Any], path: str) -> chat.ToolChoice | None:
    def named(item: dict[str, Any], param: str) -> str:
        kind = access._str(access._required(item, "type", param), f"{param}.type")
        if kind != "function":
            raise access.unsupported(
                f"tool_choice of type {kind!r} is not supported", f"{param}.type"
            )
        access._only_keys(item, {"type", "name"}, param)
        return access._str(access._required(item, "name", param), f"{param}.name")

    return tool_choice_from(obj, path, named)
