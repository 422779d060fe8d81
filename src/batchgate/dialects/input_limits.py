"""Limits on what one request may hold, beyond its types: named, the same in
every dialect, each refusal naming the path of the offending value and
carrying OpenAI's code for it (``string_above_max_length``,
``array_above_max_length``, else ``invalid_value``), which an OpenAI input
file's line error shows.

Pure, and cheap enough for 50,000 requests: the typed parts of a request
have a fixed shape, so only its free-form JSON (tool schemas and inputs,
metadata, response_format, cache_control, citations) is walked for nesting
depth; strings are read from the typed fields directly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Annotated, Any

import pydantic

from batchgate import canonical
from batchgate.canonical import chat, embeddings
from batchgate.domain import errors

# Anthropic's rule for custom_id, enforced in the Anthropic dialect.
ANTHROPIC_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Native and OpenAI: any printable text up to the store's column width.
MAX_CUSTOM_ID_CHARS = 256
# The store's column widths for model names, upload file names, and a
# webhook endpoint's url and description (see column_limits.py).
MAX_MODEL_CHARS = 200
MAX_FILENAME_CHARS = 512
MAX_WEBHOOK_URL_CHARS = 2048
MAX_WEBHOOK_DESCRIPTION_CHARS = 512
# JSON numbers are kept and passed on as 64-bit integers (orjson, the
# databases' JSON, every upstream); a larger one was a 500.
MAX_INT = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NUL = "\x00"
# OpenAI's codes for these refusals.
INVALID_VALUE = "invalid_value"
STRING_TOO_LONG = "string_above_max_length"
ARRAY_TOO_LONG = "array_above_max_length"


@dataclasses.dataclass(frozen=True)
class InputLimits:
    max_messages: int = 100_000  # per request, as Anthropic allows
    max_string_chars: int = 2 * 1024 * 1024  # any one string
    max_json_depth: int = 32  # nesting inside free-form JSON values


def refuse_nul(value: str) -> str:
    """PostgreSQL's text cannot hold U+0000 (psycopg raises on it), so a
    string that is stored or compared in a query may not either."""
    if NUL in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


# The one validator for every wire string that reaches a column or a query.
NoNul = pydantic.AfterValidator(refuse_nul)
SafeStr = Annotated[str, NoNul]


def model_is_storable(model: str) -> bool:
    """Whether a model name fits the store's model columns."""
    return len(model) <= MAX_MODEL_CHARS and not _CONTROL.search(model)


def check_custom_id(custom_id: str, path: str, *, anthropic: bool) -> None:
    if anthropic:
        if not ANTHROPIC_CUSTOM_ID.match(custom_id):
            raise errors.InvalidRequest(
                f"{path}: custom_id must match ^[a-zA-Z0-9_-]{{1,64}}$, got {custom_id!r:.80}",
                param=path,
                code=INVALID_VALUE,
            )
        return
    if not 1 <= len(custom_id) <= MAX_CUSTOM_ID_CHARS or _CONTROL.search(custom_id):
        raise errors.InvalidRequest(
            f"{path}: custom_id must be 1 to {MAX_CUSTOM_ID_CHARS} characters without "
            f"control characters, got {len(custom_id)} characters",
            param=path,
            code=INVALID_VALUE,
        )


def check_request(request: canonical.Request, limits: InputLimits, path: str) -> None:
    """Raise InvalidRequest naming ``path``.<field> for the first limit the
    request passes (limits that depend on the model, such as its context
    window, are the capability check's: backends/capability.py)."""
    if len(request.model) > MAX_MODEL_CHARS:
        _refuse(f"{path}.model", f"must be at most {MAX_MODEL_CHARS} characters", STRING_TOO_LONG)
    if _CONTROL.search(request.model):
        _refuse(f"{path}.model", "must not contain control characters")
    if isinstance(request, embeddings.EmbeddingRequest):
        _check_embedding_inputs(request, limits, path)
        return
    if len(request.messages) > limits.max_messages:
        _refuse(
            f"{path}.messages",
            f"at most {limits.max_messages:,} messages per request, got {len(request.messages):,}",
            ARRAY_TOO_LONG,
        )
    for where, number in _typed_ints(request):
        if not -MAX_INT <= number <= MAX_INT:
            _refuse(f"{path}.{where}", "integers must fit in 64 bits")
    strings = list(_typed_strings(request))
    for where, value in _free_form(request):
        depth = _depth(value, limits.max_json_depth)
        if depth > limits.max_json_depth:
            _refuse(f"{path}.{where}", f"nested deeper than {limits.max_json_depth} levels")
        for inner, leaf in _leaves(value, where):
            if isinstance(leaf, str):
                strings.append((inner, leaf))
            elif isinstance(leaf, int) and not isinstance(leaf, bool) and abs(leaf) > MAX_INT:
                _refuse(f"{path}.{inner}", "integers must fit in 64 bits")
    for where, text in strings:
        if len(text) > limits.max_string_chars:
            _refuse(
                f"{path}.{where}",
                f"strings may be at most {limits.max_string_chars:,} characters, "
                f"this one has {len(text):,}",
                STRING_TOO_LONG,
            )


def _check_embedding_inputs(
    request: embeddings.EmbeddingRequest, limits: InputLimits, path: str
) -> None:
    for index, item in enumerate(request.input):
        if isinstance(item, str) and len(item) > limits.max_string_chars:
            _refuse(
                f"{path}.input[{index}]",
                f"strings may be at most {limits.max_string_chars:,} characters, "
                f"this one has {len(item):,}",
                STRING_TOO_LONG,
            )


def _refuse(param: str, reason: str, code: str = "invalid_value") -> None:
    raise errors.InvalidRequest(f"{param}: {reason}", param=param, code=code)


def _free_form(request: chat.ChatRequest) -> Iterator[tuple[str, Any]]:
    """The request's values whose shape the types leave open."""
    if request.metadata:
        yield "metadata", request.metadata
    if request.response_format:
        yield "response_format", request.response_format
    for i, tool in enumerate(request.tools or []):
        yield f"tools[{i}]", tool.model_dump(exclude_none=True)
    for m, message in enumerate(request.messages):
        if isinstance(message.content, str):
            continue
        for b, block in enumerate(message.content):
            if not isinstance(block, chat.TextBlock | chat.ImageBlock) or block.cache_control:
                yield f"messages[{m}].content[{b}]", block.model_dump(exclude_none=True)
            elif isinstance(block, chat.TextBlock) and block.citations:
                yield f"messages[{m}].content[{b}].citations", block.citations


def _typed_strings(request: chat.ChatRequest) -> Iterator[tuple[str, str]]:
    """The strings of a request's typed fields (free-form ones: _free_form)."""
    if isinstance(request.system, str):
        yield "system", request.system
    elif request.system:
        for i, text_block in enumerate(request.system):
            yield f"system[{i}].text", text_block.text
    for i, stop in enumerate(request.stop_sequences or []):
        yield f"stop_sequences[{i}]", stop
    for m, message in enumerate(request.messages):
        if isinstance(message.content, str):
            yield f"messages[{m}].content", message.content
            continue
        for b, block in enumerate(message.content):
            where = f"messages[{m}].content[{b}]"
            if isinstance(block, chat.TextBlock):
                yield f"{where}.text", block.text
            elif isinstance(block, chat.ThinkingBlock):
                yield f"{where}.thinking", block.thinking
            elif isinstance(block, chat.RedactedThinkingBlock):
                yield f"{where}.data", block.data
            elif isinstance(block, chat.DocumentBlock) and block.source.type == "text":
                # Text, unlike a PDF's base64: bounded like any other string.
                yield f"{where}.source.data", block.source.data or ""
            # Image data is bounded by the body size alone: a 5 MB image is
            # 7 MB of base64, more than any text needs.


def _typed_ints(request: chat.ChatRequest) -> Iterator[tuple[str, int]]:
    yield "max_tokens", request.max_tokens
    for name in ("seed", "top_k"):
        value = getattr(request, name)
        if value is not None:
            yield name, value
    if request.thinking is not None and request.thinking.budget_tokens is not None:
        yield "thinking.budget_tokens", request.thinking.budget_tokens


def _depth(value: Any, limit: int, level: int = 0) -> int:
    """How deep ``value`` nests (stops looking past ``limit``)."""
    if level > limit:
        return level
    if isinstance(value, dict):
        return max((_depth(v, limit, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, limit, level + 1) for v in value), default=level + 1)
    return level


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every scalar inside a free-form value, with its path (image data
    excepted, as above)."""
    if path.endswith(".source.data"):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value
