"""A Chat Completions request body -> the canonical chat request
(the OpenAI dialect's input lines)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pydantic

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions.access import (
    _MIN_THINKING_BUDGET,
    DEFAULT_MAX_TOKENS,
    REASONING_BUDGETS,
    TranslationError,
    _bool,
    _dict,
    _int,
    _list,
    _number,
    _objects,
    _only_keys,
    _required,
    _str,
    _type,
    check_arguments,
    check_neutral,
    unsupported,
)

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
    check_arguments(obj, _REQUEST_KEYS, path)
    _check_dropped_and_neutral(obj, path)
    if obj.get("stream") is not None and _bool(obj["stream"], f"{path}.stream"):
        raise unsupported("stream is not supported in a batch", f"{path}.stream")
    n = obj.get("n")
    if n is not None and _int(n, f"{path}.n") != 1:
        raise unsupported("only n=1 is supported", f"{path}.n")

    system, messages = _messages_from(_required(obj, "messages", path), f"{path}.messages")
    max_tokens = _max_tokens_from(obj, path)
    params = common_params(obj, path, max_tokens=max_tokens, system=system, messages=messages)
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
    return validated(params, path)


# Where each OpenAI-shaped body may set its output limit.
_MAX_TOKENS_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def common_params(
    obj: Mapping[str, Any],
    path: str,
    *,
    max_tokens: int,
    system: list[chat.TextBlock],
    messages: list[chat.Message],
) -> dict[str, Any]:
    """The canonical params every OpenAI-shaped body (Chat Completions,
    Responses) maps alike: model, output limit, system prompt, messages,
    ``temperature`` and ``top_p``."""
    params: dict[str, Any] = {
        "model": _str(_required(obj, "model", path), f"{path}.model"),
        "max_tokens": max_tokens,
        "messages": messages,
    }
    if all(obj.get(key) is None for key in _MAX_TOKENS_KEYS):
        params["max_tokens_defaulted"] = True
    if system:
        params["system"] = system[0].text if len(system) == 1 else system
    for key in ("temperature", "top_p"):
        if obj.get(key) is not None:
            params[key] = _number(obj[key], f"{path}.{key}")
    return params


def validated(params: Mapping[str, Any], path: str) -> chat.ChatRequest:
    """The canonical request, or a TranslationError naming the wrong field."""
    try:
        return chat.ChatRequest.model_validate(params)
    except pydantic.ValidationError as exc:
        raise _from_validation_error(exc, path) from None


def check_dropped(obj: Mapping[str, Any], path: str, strings: tuple[str, ...]) -> None:
    """Fields that are accepted and dropped must still be well-typed:
    ``metadata`` a string map, ``store`` a boolean, ``strings`` strings."""
    if obj.get("metadata") is not None:
        for key, value in _dict(obj["metadata"], f"{path}.metadata").items():
            _str(value, f"{path}.metadata.{key}")
    for key in strings:
        if obj.get(key) is not None:
            _str(obj[key], f"{path}.{key}")
    if obj.get("store") is not None:
        _bool(obj["store"], f"{path}.store")


def _check_dropped_and_neutral(obj: Mapping[str, Any], path: str) -> None:
    check_neutral(obj, _NEUTRAL, path)
    check_dropped(obj, path, ("user", "service_tier"))


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
    param = f"{path}.reasoning_effort"
    return thinking_for_effort(_str(value, param), max_tokens, param)


def thinking_for_effort(effort: str, max_tokens: int, param: str) -> chat.Thinking:
    """OpenAI's reasoning effort as Messages thinking (see the module notes)."""
    if effort == "none":
        return chat.Thinking(type="disabled")
    if effort not in REASONING_BUDGETS:
        allowed = ", ".join(["none", *REASONING_BUDGETS])
        raise TranslationError(f"reasoning effort must be one of {allowed}", param)
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
    for p, item in _objects(value, param):
        _only_keys(item, {"type", "function"}, p)
        if _type(item, p) != "function":
            raise unsupported("only tools of type 'function' are supported", f"{p}.type")
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
    def named(item: dict[str, Any], param: str) -> str:
        _only_keys(item, {"type", "function"}, param)
        if _type(item, param) != "function":
            raise TranslationError("tool_choice type must be 'function'", f"{param}.type")
        fn = _dict(_required(item, "function", param), f"{param}.function")
        _only_keys(fn, {"name"}, f"{param}.function")
        return _str(_required(fn, "name", f"{param}.function"), f"{param}.function.name")

    return tool_choice_from(obj, path, named)


def tool_choice_from(
    obj: Mapping[str, Any], path: str, named: Callable[[dict[str, Any], str], str]
) -> chat.ToolChoice | None:
    """``tool_choice`` and ``parallel_tool_calls`` as a Messages tool choice;
    ``named`` reads the forced tool's name from an object choice (its shape
    differs between Chat Completions and the Responses API)."""
    raw = obj.get("tool_choice")
    param = f"{path}.tool_choice"
    choice: chat.ToolChoice | None = None
    if isinstance(raw, str):
        mapping = {"auto": "auto", "none": "none", "required": "any"}
        if raw not in mapping:
            raise TranslationError("tool_choice must be auto, none or required", param)
        choice = chat.ToolChoice.model_validate({"type": mapping[raw]})
    elif raw is not None:
        choice = chat.ToolChoice(type="tool", name=named(_dict(raw, param), param))
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
    for p, part in _objects(value, param):
        _only_keys(part, {"type", "text"}, p)
        if _type(part, p) != "text":
            raise TranslationError("only text parts are allowed here", f"{p}.type")
        blocks.append(chat.TextBlock(text=_str(_required(part, "text", p), f"{p}.text")))
    return blocks


def _user_content(value: object, param: str) -> list[chat.ContentBlock]:
    if isinstance(value, str):
        return [chat.TextBlock(text=value)]
    blocks: list[chat.ContentBlock] = []
    for p, part in _objects(value, param):
        kind = _type(part, p)
        if kind == "text":
            _only_keys(part, {"type", "text"}, p)
            blocks.append(chat.TextBlock(text=_str(_required(part, "text", p), f"{p}.text")))
        elif kind == "image_url":
            _only_keys(part, {"type", "image_url"}, p)
            blocks.append(_image_from(_required(part, "image_url", p), f"{p}.image_url"))
        elif kind == "file":
            _only_keys(part, {"type", "file"}, p)
            blocks.append(_pdf_from(_required(part, "file", p), f"{p}.file"))
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


def _pdf_from(value: object, param: str, *, by_url: bool = False) -> chat.DocumentBlock:
    """A file part (a Chat Completions ``file``'s object, a Responses
    ``input_file``'s fields) as a document block, so the PDF reaches an
    upstream that reads PDFs as a PDF: ``file_data`` a base64 PDF data: URL,
    or (``by_url``: Responses) a ``file_url``."""
    obj = _dict(value, param)
    _only_keys(
        obj, {"file_data", "filename", "file_id"} | ({"file_url"} if by_url else set()), param
    )
    if "file_id" in obj:
        raise TranslationError(
            "files by file_id are not supported; send the PDF inline as file_data",
            f"{param}.file_id",
        )
    filename = _str(obj["filename"], f"{param}.filename") if "filename" in obj else None
    if "file_url" in obj:
        url = _str(obj["file_url"], f"{param}.file_url")
        if not url.startswith(("http://", "https://")):
            raise TranslationError("file_url must be an http(s) URL", f"{param}.file_url")
        return chat.DocumentBlock(source=chat.DocumentSource(type="url", url=url), title=filename)
    data_url = _str(_required(obj, "file_data", param), f"{param}.file_data")
    match = _DATA_URL.match(data_url)
    if not match or match.group("media") != "application/pdf":
        raise TranslationError(
            "file_data must be a PDF as a data:application/pdf;base64, URL", f"{param}.file_data"
        )
    source = chat.DocumentSource(
        type="base64", media_type="application/pdf", data=match.group("data")
    )
    return chat.DocumentBlock(source=source, title=filename)


def _assistant_blocks(msg: Mapping[str, Any], param: str) -> list[chat.ContentBlock]:
    blocks: list[chat.ContentBlock] = []
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            blocks.append(chat.TextBlock(text=content))
    elif content is not None:
        for p, part in _objects(content, f"{param}.content"):
            kind = _type(part, p)
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
