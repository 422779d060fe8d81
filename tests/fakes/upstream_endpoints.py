"""The fake upstream's other OpenAI endpoints: ``/v1/completions``,
``/v1/responses`` and ``/v1/embeddings`` (pure functions over parsed bodies,
beside :mod:`tests.fakes.upstream_replies`, whose reply rules they share).

* ``/v1/completions``: the prompt is the last user text; the reply is
  ``"echo: <prompt>"`` under the same stop / ``max_tokens`` (default 16)
  rules, as a ``text_completion``.
* ``/v1/responses``: ``input`` (a string or message items with
  ``input_text``) and ``instructions`` as a conversation; the reply is a
  ``response`` object with a reasoning item when ``reasoning.effort`` asks
  for it (its words are ``reasoning_tokens``), a message or a function call,
  ``status: "incomplete"`` when ``max_output_tokens`` cut it.
* ``/v1/embeddings``: one vector per input, derived from a hash of the input
  (the same input always gets the same unit vector), ``dimensions`` long
  (default 8), as floats or base64 float32 per ``encoding_format``.
  ``prompt_tokens`` counts the inputs' words (token arrays: their length).
  The fingerprint is the first input.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import time
from typing import Any

from tests.fakes.upstream_replies import Conversation, Reply, _call_id, count_words

DEFAULT_COMPLETION_TOKENS = 16
DEFAULT_DIMENSIONS = 8


# --- /v1/completions


def validate_completion(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: field required"
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list):
        return "prompt: field required"
    return None


def completion_conversation(body: dict[str, Any]) -> Conversation:
    prompt = body["prompt"]
    text = prompt if isinstance(prompt, str) else " ".join(str(p) for p in prompt)
    stop = body.get("stop")
    return Conversation(
        last_user_text=text,
        tool_result=None,
        tool_names=[],
        forced_tool=None,
        tools_allowed=False,
        max_tokens=body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS,
        stops=[stop] if isinstance(stop, str) else list(stop or []),
        thinking=False,
        prompt_tokens=count_words(text),
    )


def text_completion(body: dict[str, Any], reply: Reply, seq: int) -> dict[str, Any]:
    return {
        "id": f"cmpl-fake-{seq}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {
                "text": reply.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": "length" if reply.finish == "length" else "stop",
                "stop_reason": reply.matched_stop,  # as vLLM reports it
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


# --- /v1/responses


def validate_response(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: field required"
    if not isinstance(body.get("input"), str | list) or not body["input"]:
        return "input: field required"
    if "messages" in body or "max_tokens" in body:
        return "unknown parameter: this is not a chat completions endpoint"
    return None


def _part_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "")
        for part in content or []
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
    )


def response_conversation(body: dict[str, Any]) -> Conversation:
    items = body["input"]
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    last_user = ""
    tool_result = None
    for item in items:
        if item.get("role") == "user":
            last_user = _part_text(item.get("content"))
    if items and items[-1].get("type") == "function_call_output":
        tool_result = str(items[-1].get("output"))
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    forced = "" if choice == "required" else None
    if isinstance(choice, dict):
        forced = choice.get("name", "")
    effort = (body.get("reasoning") or {}).get("effort")
    return Conversation(
        last_user_text=last_user,
        tool_result=tool_result,
        tool_names=[t.get("name", "") for t in tools],
        forced_tool=forced,
        tools_allowed=choice != "none",
        max_tokens=body.get("max_output_tokens"),
        stops=[],
        thinking=effort not in (None, "none"),
        prompt_tokens=count_words(items) + count_words(body.get("instructions")),
    )


def response_object(body: dict[str, Any], reply: Reply, seq: int) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    reasoning_tokens = 0
    if reply.thinking is not None:
        reasoning_tokens = count_words(reply.thinking)
        output.append(
            {
                "id": f"rs_fake{seq}",
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": reply.thinking}],
            }
        )
    incomplete = reply.finish == "length"
    if reply.tool_name is not None:
        output.append(
            {
                "id": f"fc_fake{seq}",
                "type": "function_call",
                "call_id": _call_id("call_", f"{seq}:{reply.tool_input}"),
                "name": reply.tool_name,
                "arguments": json.dumps(reply.tool_input),
                "status": "completed",
            }
        )
    else:
        output.append(
            {
                "id": f"msg_fake{seq}",
                "type": "message",
                "role": "assistant",
                "status": "incomplete" if incomplete else "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    output_tokens = reply.completion_tokens + reasoning_tokens
    return {
        "id": f"resp_fake{seq}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "model": body.get("model", ""),
        "output": output,
        "usage": {
            "input_tokens": reply.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": reply.prompt_tokens + output_tokens,
        },
    }


# --- /v1/embeddings


def validate_embeddings(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: field required"
    value = body.get("input")
    if isinstance(value, str):
        return None if value else "input: must not be empty"
    if not isinstance(value, list) or not value:
        return "input: must be a string or a non-empty array"
    if body.get("encoding_format") not in (None, "float", "base64"):
        return "encoding_format: must be float or base64"
    return None


def _inputs(body: dict[str, Any]) -> list[str | list[int]]:
    value = body["input"]
    if isinstance(value, str):
        return [value]
    if all(isinstance(item, int) for item in value):
        return [value]
    return list(value)


def embeddings_conversation(body: dict[str, Any]) -> Conversation:
    inputs = _inputs(body)
    first = inputs[0]
    return Conversation(
        last_user_text=first if isinstance(first, str) else " ".join(map(str, first)),
        tool_result=None,
        tool_names=[],
        forced_tool=None,
        tools_allowed=False,
        max_tokens=None,
        stops=[],
        thinking=False,
        prompt_tokens=sum(
            len(item) if isinstance(item, list) else count_words(item) for item in inputs
        ),
    )


def vector_for(item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's embedding of one input: a unit vector from its hash."""
    seed = item if isinstance(item, str) else ",".join(map(str, item))
    digest = hashlib.sha256(seed.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    # Rounded to float32, so base64 and float answers agree exactly.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in raw]


def embeddings_list(body: dict[str, Any], reply: Reply, seq: int) -> dict[str, Any]:
    dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
    data = []
    for index, item in enumerate(_inputs(body)):
        vector = vector_for(item, dimensions)
        embedding: list[float] | str = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", ""),
        "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
    }
