"""Translation between the canonical chat types and OpenAI's legacy
``/v1/completions`` (pure, no I/O), both ways:

* :func:`request_from_completions` reads an input line's ``body`` into a
  :class:`chat.ChatRequest` whose one user message is the prompt
  (``raw_prompt``);
* :func:`response_to_completion` renders a canonical reply as a
  ``text_completion``;
* :func:`request_to_completions` / :func:`response_from_completion` talk to
  an upstream that serves ``/completions`` itself.

A completions prompt is text to continue, a chat message is text to answer:
the meaning is the same only as far as "write what follows this prompt"
goes. The embedded engine continues the prompt as raw text (it reads
``raw_prompt``; see ``backends/llama_cpp/text.py``); upstreams without
``/completions`` get it through chat, as the user's turn under the model's
chat template. What a chat request cannot carry is refused on the line, not
dropped: several prompts or ``n``/``best_of`` above 1 (several choices per
line), token-array prompts, ``echo``, ``suffix``, ``logprobs``, and
non-neutral ``logit_bias`` / penalties. ``max_tokens`` defaults to 16, as
OpenAI's does.
"""

from __future__ import annotations

from typing import Any

import pydantic

from batchgate.canonical import chat
from batchgate.wire.openai.chat_completions.access import (
    TranslationError,
    _dict,
    _int,
    _list,
    _number,
    _required,
    _str,
    check_arguments,
    check_neutral,
    unsupported,
)
from batchgate.wire.openai.chat_completions.inbound import _from_validation_error, _stop_from
from batchgate.wire.openai.chat_completions.replies import _stop_reason, usage_from_openai

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_STOP = 4

_KEYS = {
    "model",
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
}
# Accepted only at the value that changes nothing.
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "best_of": (None, 1),
    "n": (None, 1),
    "echo": (None, False),
    "logprobs": (None,),
    "suffix": (None,),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "stream": (None, False),
    "stream_options": (None,),
}
_WHY = {
    "best_of": "best_of above 1 needs several candidates per line; send one request per choice",
    "n": "n above 1 asks for several choices per line; send one request per choice",
    "echo": "echo needs the prompt's own tokens back, which a chat model does not return",
    "logprobs": "logprobs are not available",
    "suffix": "suffix (insertion) is not available",
    "stream": "stream is not supported in a batch",
}


def request_from_completions(body: object, *, path: str = "body") -> chat.ChatRequest:
    obj = _dict(body, path)
    check_arguments(obj, _KEYS, path)
    check_neutral(obj, _NEUTRAL, path, _WHY)
    prompt = _prompt(_required(obj, "prompt", path), f"{path}.prompt")
    params: dict[str, Any] = {
        "model": _str(_required(obj, "model", path), f"{path}.model"),
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
        "raw_prompt": True,
    }
    if obj.get("max_tokens") is not None:
        params["max_tokens"] = _int(obj["max_tokens"], f"{path}.max_tokens")
    else:
        params["max_tokens_defaulted"] = True
    for key in ("temperature", "top_p"):
        if obj.get(key) is not None:
            params[key] = _number(obj[key], f"{path}.{key}")
    if obj.get("seed") is not None:
        params["seed"] = _int(obj["seed"], f"{path}.seed")
    if obj.get("stop") is not None:
        stops = _stop_from(obj["stop"], f"{path}.stop")
        if len(stops) > MAX_STOP:
            raise TranslationError(f"stop may hold at most {MAX_STOP} sequences", f"{path}.stop")
        params["stop_sequences"] = stops
    if obj.get("user") is not None:
        _str(obj["user"], f"{path}.user")
    try:
        return chat.ChatRequest.model_validate(params)
    except pydantic.ValidationError as exc:
        raise _from_validation_error(exc, path) from None


def _prompt(value: object, param: str) -> str:
    if isinstance(value, str):
        if not value:
            raise TranslationError("prompt must not be empty", param)
        return value
    items = _list(value, param)
    if len(items) == 1 and isinstance(items[0], str):
        return _prompt(items[0], f"{param}[0]")
    if items and all(isinstance(item, str) for item in items):
        raise unsupported(
            "several prompts in one line ask for several completions; send one request per prompt",
            param,
        )
    raise unsupported("token-array prompts are not supported; send the prompt as text", param)


def prompt_of(request: chat.ChatRequest) -> str:
    """The prompt of a request read from a completions line (one user
    message of text); TranslationError for any other shape."""
    if request.system is None and len(request.messages) == 1:
        message = request.messages[0]
        if message.role == "user" and isinstance(message.content, str):
            return message.content
    raise TranslationError("only a single-prompt request can be sent to /completions", "messages")


_FINISH_FOR_STOP = {"max_tokens": "length", "refusal": "content_filter"}


def response_to_completion(
    response: chat.ChatResponse, *, completion_id: str, created: int
) -> dict[str, Any]:
    """A ``text_completion`` object for ``response``."""
    usage = response.usage
    prompt_tokens = (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": response.model,
        "choices": [
            {
                "text": response.text(),
                "index": 0,
                "logprobs": None,
                "finish_reason": _FINISH_FOR_STOP.get(response.stop_reason or "", "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": prompt_tokens + usage.output_tokens,
        },
        "system_fingerprint": None,
    }


def request_to_completions(request: chat.ChatRequest, *, upstream_model: str) -> dict[str, Any]:
    """The body for an upstream's own ``/completions``."""
    body: dict[str, Any] = {
        "model": upstream_model,
        "prompt": prompt_of(request),
        "max_tokens": request.max_tokens,
    }
    for key in ("temperature", "top_p", "top_k", "seed"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    return body


def response_from_completion(body: object, *, request: chat.ChatRequest) -> chat.ChatResponse:
    """An upstream's ``text_completion`` as a canonical reply."""
    obj = _dict(body, "response")
    choices = _list(_required(obj, "choices", "response"), "response.choices")
    if not choices:
        raise TranslationError("choices is empty", "response.choices")
    choice = _dict(choices[0], "response.choices[0]")
    text = _str(choice.get("text") or "", "response.choices[0].text")
    stop_reason, stop_sequence, kept = _stop_reason(choice, text, request)
    return chat.ChatResponse(
        id=str(obj.get("id") or "cmpl"),
        model=str(obj.get("model") or request.model),
        content=[chat.TextBlock(text=kept)] if kept else [],
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=usage_from_openai(obj.get("usage")),
    )
