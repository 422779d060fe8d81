"""Translation between the canonical chat types and OpenAI Chat Completions.

Four pure functions, no I/O:

* :func:`request_from_chat_completions` reads an OpenAI-dialect input line's
  ``body`` into a :class:`chat.ChatRequest` (strictly: unknown or wrong-typed
  fields raise :class:`TranslationError` with a dotted ``param`` path).
* :func:`request_to_chat_completions` writes a canonical request as the body
  sent to an OpenAI-compatible server (vLLM, SGLang, llama-server, Ollama, ...).
* :func:`response_from_chat_completion` reads such a server's reply.
* :func:`response_to_chat_completion` renders a canonical reply as a
  ``chat.completion`` object for the OpenAI dialect's output file.

Decisions the Chat Completions shape leaves open, and how they are made here:

* ``max_tokens`` / ``max_completion_tokens`` are optional in Chat Completions but
  required in Messages. When both are absent :data:`DEFAULT_MAX_TOKENS` is
  used; when both are present ``max_completion_tokens`` (the newer one) wins.
* ``system`` and ``developer`` messages, wherever they appear, become the one
  ``system`` prompt (Messages has a single system prompt), in order.
* Consecutive messages of the same Messages role are merged into one turn, so
  ``tool`` messages (which become ``tool_result`` blocks in a user turn) and a
  following ``user`` message form one user turn, tool results first.
* ``reasoning_effort`` becomes ``thinking: enabled`` with a budget from
  :data:`REASONING_BUDGETS`, capped below ``max_tokens`` (Messages requires
  ``budget_tokens < max_tokens``) but never under 1024 (the Messages minimum);
  ``"none"`` becomes ``thinking: disabled``. Going back, a budget maps to the
  effort whose budget range holds it (see :func:`effort_for_budget`).
* Parameters that only have a neutral value in Messages (``presence_penalty``,
  ``frequency_penalty``, ``logprobs``, ``logit_bias``, ...) are accepted when
  neutral and rejected otherwise, so nobody silently loses a setting.
  ``metadata``, ``user``, ``store`` and ``service_tier`` are dropped;
  ``stream: true`` is rejected (a batch has nobody to stream to).
* ``top_k`` is accepted as an extension (vLLM, SGLang, llama-server and Ollama
  read it) and sent to OpenAI-compatible servers as a top-level field.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import pydantic

from batchgate import chat

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` for Chat Completions requests that give no limit."""

REASONING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
"""Thinking budget (tokens) for each ``reasoning_effort``."""

_MIN_THINKING_BUDGET = 1024

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


class TranslationError(ValueError):
    """A body that cannot be translated. ``param`` is a dotted path to the
    offending field (``body.messages[2].content``), or None for the whole body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --------------------------------------------------------------------------
# Small typed accessors: every wrong type names its path.


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dict(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(f"expected an object, got {_type_name(value)}", param)
    return value


def _list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"expected an array, got {_type_name(value)}", param)
    return value


def _str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"expected a string, got {_type_name(value)}", param)
    return value


def _int(value: object, param: str) -> int:
    # bool is an int subclass in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranslationError(f"expected an integer, got {_type_name(value)}", param)
    return value


def _number(value: object, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(f"expected a number, got {_type_name(value)}", param)
    return float(value)


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise TranslationError(f"expected a boolean, got {_type_name(value)}", param)
    return value


def _only_keys(obj: Mapping[str, Any], allowed: Iterable[str], param: str) -> None:
    allowed_set = set(allowed)
    for key in obj:
        if key not in allowed_set:
            raise TranslationError(f"unrecognized field {key!r}", f"{param}.{key}")


def _required(obj: Mapping[str, Any], key: str, param: str) -> Any:
    if key not in obj or obj[key] is None:
        raise TranslationError(f"missing required field {key!r}", f"{param}.{key}")
    return obj[key]


# --------------------------------------------------------------------------
# Chat Completions body -> canonical request


# Fields accepted only at their neutral value: anything else would be silently
# ignored by a Messages-shaped backend.
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "stream_options": (None,),
}
_DROPPED = {"metadata", "user", "store", "service_tier"}
_MAPPED = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "n",
    "stream",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
}
_REQUEST_KEYS = _MAPPED | _DROPPED | set(_NEUTRAL)


def request_from_chat_completions(body: object, *, path: str = "body") -> chat.ChatRequest:
    """Translate a Chat Completions request body into a canonical request.

    Raises :class:`TranslationError` naming the first offending field.
    """
    obj = _dict(body, path)
    for key in obj:
        if key not in _REQUEST_KEYS:
            raise TranslationError(
                f"unrecognized request argument supplied: {key}", f"{path}.{key}"
            )
    _check_dropped_and_neutral(obj, path)
    if obj.get("stream") is not None and _bool(obj["stream"], f"{path}.stream"):
        raise TranslationError("stream is not supported in a batch", f"{path}.stream")
    n = obj.get("n")
    if n is not None and _int(n, f"{path}.n") != 1:
        raise TranslationError("only n=1 is supported", f"{path}.n")

    system, messages = _messages_from(_required(obj, "messages", path), f"{path}.messages")
    max_tokens = _max_tokens_from(obj, path)
    params: dict[str, Any] = {
        "model": _str(_required(obj, "model", path), f"{path}.model"),
        "max_tokens": max_tokens,
        "messages": messages,
    }
    if system:
        params["system"] = system[0].text if len(system) == 1 else system
    for key in ("temperature", "top_p"):
        if obj.get(key) is not None:
            params[key] = _number(obj[key], f"{path}.{key}")
    if obj.get("top_k") is not None:
        params["top_k"] = _int(obj["top_k"], f"{path}.top_k")
    if obj.get("seed") is not None:
        params["seed"] = _int(obj["seed"], f"{path}.seed")
    if obj.get("stop") is not None:
        params["stop_sequences"] = _stop_from(obj["stop"], f"{path}.stop")
    if obj.get("tools") is not None:
        params["tools"] = _tools_from(obj["tools"], f"{path}.tools")
    tool_choice = _tool_choice_from(obj, path)
    if tool_choice is not None:
        params["tool_choice"] = tool_choice
    if obj.get("response_format") is not None:
        fmt = _dict(obj["response_format"], f"{path}.response_format")
        _str(_required(fmt, "type", f"{path}.response_format"), f"{path}.response_format.type")
        params["response_format"] = fmt
    if obj.get("reasoning_effort") is not None:
        params["thinking"] = _thinking_from(obj["reasoning_effort"], max_tokens, path)
    try:
        return chat.ChatRequest.model_validate(params)
    except pydantic.ValidationError as exc:
        raise _from_validation_error(exc, path) from None


def _check_dropped_and_neutral(obj: Mapping[str, Any], path: str) -> None:
    for key, neutral in _NEUTRAL.items():
        if key in obj and not any(obj[key] == value for value in neutral):
            raise TranslationError(f"{key} is not supported", f"{path}.{key}")
    if obj.get("metadata") is not None:
        for key, value in _dict(obj["metadata"], f"{path}.metadata").items():
            _str(value, f"{path}.metadata.{key}")
    if obj.get("user") is not None:
        _str(obj["user"], f"{path}.user")
    if obj.get("store") is not None:
        _bool(obj["store"], f"{path}.store")
    if obj.get("service_tier") is not None:
        _str(obj["service_tier"], f"{path}.service_tier")


def _max_tokens_from(obj: Mapping[str, Any], path: str) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        if obj.get(key) is not None:
            value = _int(obj[key], f"{path}.{key}")
            if value < 1:
                raise TranslationError(f"{key} must be at least 1", f"{path}.{key}")
            return value
    return DEFAULT_MAX_TOKENS


def _stop_from(value: object, param: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [_str(item, f"{param}[{i}]") for i, item in enumerate(_list(value, param))]


def _thinking_from(value: object, max_tokens: int, path: str) -> chat.Thinking:
    effort = _str(value, f"{path}.reasoning_effort")
    if effort == "none":
        return chat.Thinking(type="disabled")
    if effort not in REASONING_BUDGETS:
        allowed = ", ".join(["none", *REASONING_BUDGETS])
        raise TranslationError(
            f"reasoning_effort must be one of {allowed}", f"{path}.reasoning_effort"
        )
    budget = max(_MIN_THINKING_BUDGET, min(REASONING_BUDGETS[effort], max_tokens - 1))
    return chat.Thinking(type="enabled", budget_tokens=budget)


def effort_for_budget(budget_tokens: int | None) -> str:
    """The ``reasoning_effort`` for a thinking budget: the smallest of low,
    medium, high whose budget is at least ``budget_tokens`` (high above that).
    ``minimal`` is never produced because few servers accept it."""
    if budget_tokens is None:
        return "medium"
    for effort in ("low", "medium"):
        if budget_tokens <= REASONING_BUDGETS[effort]:
            return effort
    return "high"


def _tools_from(value: object, param: str) -> list[chat.Tool]:
    tools = []
    for i, raw in enumerate(_list(value, param)):
        p = f"{param}[{i}]"
        item = _dict(raw, p)
        _only_keys(item, {"type", "function"}, p)
        if _str(_required(item, "type", p), f"{p}.type") != "function":
            raise TranslationError("only tools of type 'function' are supported", f"{p}.type")
        fn = _dict(_required(item, "function", p), f"{p}.function")
        _only_keys(fn, {"name", "description", "parameters", "strict"}, f"{p}.function")
        spec: dict[str, Any] = {
            "name": _str(_required(fn, "name", f"{p}.function"), f"{p}.function.name")
        }
        if fn.get("description") is not None:
            spec["description"] = _str(fn["description"], f"{p}.function.description")
        if fn.get("parameters") is not None:
            spec["input_schema"] = _dict(fn["parameters"], f"{p}.function.parameters")
        # ``strict`` (OpenAI structured outputs for arguments) has no Messages
        # counterpart; it is dropped.
        tools.append(chat.Tool.model_validate(spec))
    return tools


def _tool_choice_from(obj: Mapping[str, Any], path: str) -> chat.ToolChoice | None:
    raw = obj.get("tool_choice")
    param = f"{path}.tool_choice"
    choice: chat.ToolChoice | None = None
    if isinstance(raw, str):
        mapping = {"auto": "auto", "none": "none", "required": "any"}
        if raw not in mapping:
            raise TranslationError("tool_choice must be auto, none or required", param)
        choice = chat.ToolChoice.model_validate({"type": mapping[raw]})
    elif raw is not None:
        item = _dict(raw, param)
        _only_keys(item, {"type", "function"}, param)
        if _str(_required(item, "type", param), f"{param}.type") != "function":
            raise TranslationError("tool_choice type must be 'function'", f"{param}.type")
        fn = _dict(_required(item, "function", param), f"{param}.function")
        _only_keys(fn, {"name"}, f"{param}.function")
        name = _str(_required(fn, "name", f"{param}.function"), f"{param}.function.name")
        choice = chat.ToolChoice(type="tool", name=name)
    parallel = obj.get("parallel_tool_calls")
    if parallel is not None and not _bool(parallel, f"{path}.parallel_tool_calls"):
        # Messages expresses "one call at a time" on the tool choice itself.
        if choice is None:
            choice = chat.ToolChoice(type="auto")
        if choice.type != "none":
            choice.disable_parallel_tool_use = True
    return choice


def _from_validation_error(exc: pydantic.ValidationError, path: str) -> TranslationError:
    first = exc.errors()[0]
    param = path
    for part in first["loc"]:
        param += f"[{part}]" if isinstance(part, int) else f".{part}"
    return TranslationError(first["msg"], param)


# --- messages


class _Turns:
    """Canonical turns under construction: same-role turns merge."""

    def __init__(self) -> None:
        self.turns: list[tuple[Literal["user", "assistant"], list[chat.ContentBlock]]] = []

    def add(self, role: Literal["user", "assistant"], blocks: list[chat.ContentBlock]) -> None:
        if self.turns and self.turns[-1][0] == role:
            self.turns[-1][1].extend(blocks)
        else:
            self.turns.append((role, list(blocks)))

    def messages(self) -> list[chat.Message]:
        out = []
        for role, blocks in self.turns:
            # A lone text block reads back as the plain string it usually was.
            lone_text = len(blocks) == 1 and isinstance(blocks[0], chat.TextBlock)
            if lone_text and isinstance(blocks[0], chat.TextBlock):
                out.append(chat.Message(role=role, content=blocks[0].text))
            else:
                out.append(chat.Message(role=role, content=blocks))
        return out


def _messages_from(value: object, param: str) -> tuple[list[chat.TextBlock], list[chat.Message]]:
    items = _list(value, param)
    if not items:
        raise TranslationError("messages must not be empty", param)
    system: list[chat.TextBlock] = []
    turns = _Turns()
    previous_role: str | None = None
    for i, raw in enumerate(items):
        p = f"{param}[{i}]"
        msg = _dict(raw, p)
        role = _str(_required(msg, "role", p), f"{p}.role")
        if role in ("system", "developer"):
            _only_keys(msg, {"role", "content", "name"}, p)
            system.extend(_text_parts(_required(msg, "content", p), f"{p}.content"))
        elif role == "user":
            _only_keys(msg, {"role", "content", "name"}, p)
            turns.add("user", _user_content(_required(msg, "content", p), f"{p}.content"))
        elif role == "assistant":
            _only_keys(msg, {"role", "content", "name", "tool_calls", "refusal"}, p)
            blocks = _assistant_blocks(msg, p)
            if blocks:  # Messages rejects empty turns; an empty one says nothing.
                turns.add("assistant", blocks)
        elif role == "tool":
            _only_keys(msg, {"role", "content", "tool_call_id"}, p)
            if previous_role not in ("assistant", "tool"):
                raise TranslationError(
                    "a tool message must follow an assistant message with tool_calls", p
                )
            turns.add("user", [_tool_result(msg, p)])
        else:
            raise TranslationError(
                "role must be one of system, developer, user, assistant, tool", f"{p}.role"
            )
        previous_role = role
    if not turns.turns:
        raise TranslationError("messages must include a user or assistant message", param)
    return system, turns.messages()


def _text_parts(value: object, param: str) -> list[chat.TextBlock]:
    if isinstance(value, str):
        return [chat.TextBlock(text=value)] if value else []
    blocks = []
    for i, raw in enumerate(_list(value, param)):
        p = f"{param}[{i}]"
        part = _dict(raw, p)
        _only_keys(part, {"type", "text"}, p)
        if _str(_required(part, "type", p), f"{p}.type") != "text":
            raise TranslationError("only text parts are allowed here", f"{p}.type")
        blocks.append(chat.TextBlock(text=_str(_required(part, "text", p), f"{p}.text")))
    return blocks


def _user_content(value: object, param: str) -> list[chat.ContentBlock]:
    if isinstance(value, str):
        return [chat.TextBlock(text=value)]
    blocks: list[chat.ContentBlock] = []
    for i, raw in enumerate(_list(value, param)):
        p = f"{param}[{i}]"
        part = _dict(raw, p)
        kind = _str(_required(part, "type", p), f"{p}.type")
        if kind == "text":
            _only_keys(part, {"type", "text"}, p)
            blocks.append(chat.TextBlock(text=_str(_required(part, "text", p), f"{p}.text")))
        elif kind == "image_url":
            _only_keys(part, {"type", "image_url"}, p)
            blocks.append(_image_from(_required(part, "image_url", p), f"{p}.image_url"))
        else:
            raise TranslationError(f"content part type {kind!r} is not supported", f"{p}.type")
    if not blocks:
        raise TranslationError("content must not be empty", param)
    return blocks


_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


def _image_from(value: object, param: str) -> chat.ImageBlock:
    obj = _dict(value, param)
    _only_keys(obj, {"url", "detail"}, param)
    url = _str(_required(obj, "url", param), f"{param}.url")
    if obj.get("detail") is not None:
        _str(obj["detail"], f"{param}.detail")  # a resolution hint; Messages has none
    match = _DATA_URL.match(url)
    if match:
        source = chat.ImageSource(
            type="base64", media_type=match.group("media"), data=match.group("data")
        )
    elif url.startswith(("http://", "https://")):
        source = chat.ImageSource(type="url", url=url)
    else:
        raise TranslationError("image url must be http(s) or a base64 data: URL", f"{param}.url")
    return chat.ImageBlock(source=source)


def _assistant_blocks(msg: Mapping[str, Any], param: str) -> list[chat.ContentBlock]:
    blocks: list[chat.ContentBlock] = []
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            blocks.append(chat.TextBlock(text=content))
    elif content is not None:
        for i, raw in enumerate(_list(content, f"{param}.content")):
            p = f"{param}.content[{i}]"
            part = _dict(raw, p)
            kind = _str(_required(part, "type", p), f"{p}.type")
            # An earlier refusal is still what the assistant said.
            key = {"text": "text", "refusal": "refusal"}.get(kind)
            if key is None:
                raise TranslationError(f"content part type {kind!r} is not supported", f"{p}.type")
            _only_keys(part, {"type", key}, p)
            blocks.append(chat.TextBlock(text=_str(_required(part, key, p), f"{p}.{key}")))
    if msg.get("refusal") is not None:
        blocks.append(chat.TextBlock(text=_str(msg["refusal"], f"{param}.refusal")))
    if msg.get("tool_calls") is not None:
        calls = _list(msg["tool_calls"], f"{param}.tool_calls")
        blocks.extend(_tool_use(raw, f"{param}.tool_calls[{i}]") for i, raw in enumerate(calls))
    return blocks


def _tool_use(value: object, param: str) -> chat.ToolUseBlock:
    call = _dict(value, param)
    _only_keys(call, {"id", "type", "function"}, param)
    if call.get("type", "function") != "function":
        raise TranslationError("tool call type must be 'function'", f"{param}.type")
    fn = _dict(_required(call, "function", param), f"{param}.function")
    _only_keys(fn, {"name", "arguments"}, f"{param}.function")
    arguments = _str(fn.get("arguments") or "{}", f"{param}.function.arguments")
    try:
        parsed = json.loads(arguments)
    except ValueError:
        raise TranslationError(
            "arguments must be a JSON object", f"{param}.function.arguments"
        ) from None
    if not isinstance(parsed, dict):
        raise TranslationError("arguments must be a JSON object", f"{param}.function.arguments")
    return chat.ToolUseBlock(
        id=_str(_required(call, "id", param), f"{param}.id"),
        name=_str(_required(fn, "name", f"{param}.function"), f"{param}.function.name"),
        input=parsed,
    )


def _tool_result(msg: Mapping[str, Any], param: str) -> chat.ToolResultBlock:
    tool_use_id = _str(_required(msg, "tool_call_id", param), f"{param}.tool_call_id")
    content = _required(msg, "content", param)
    if isinstance(content, str):
        return chat.ToolResultBlock(tool_use_id=tool_use_id, content=content)
    parts: list[chat.TextBlock | chat.ImageBlock] = list(_text_parts(content, f"{param}.content"))
    return chat.ToolResultBlock(tool_use_id=tool_use_id, content=parts)


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
    are dropped (servers do not accept them back). Raises
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

    usage = obj.get("usage") or {}
    usage_obj = _dict(usage, "response.usage")
    return chat.ChatResponse(
        id=str(obj.get("id") or f"chatcmpl-{uuid.uuid4().hex}"),
        model=str(obj.get("model") or (request.model if request else "")),
        content=content,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=chat.Usage(
            input_tokens=_int(usage_obj.get("prompt_tokens") or 0, "response.usage.prompt_tokens"),
            output_tokens=_int(
                usage_obj.get("completion_tokens") or 0, "response.usage.completion_tokens"
            ),
        ),
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
