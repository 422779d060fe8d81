"""The native dialect: ``POST /v1/batches`` with inline Messages-API requests.

Parsing is strict and all-or-nothing: the first problem is reported with the
path of the offending value (``requests[2].params.max_tokens``) and nothing is
stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from batchgate import canonical
from batchgate.canonical import chat
from batchgate.dialects import input_limits, openai, openai_objects, paths
from batchgate.domain import errors
from batchgate.domain import files as file_model
from batchgate.domain.batch import Batch

ENDPOINT = "/v1/messages"


class InlineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    custom_id: str = Field(min_length=1)
    params: chat.ChatRequest


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    requests: list[InlineRequest] = Field(min_length=1)
    metadata: dict[input_limits.SafeStr, input_limits.SafeStr] | None = None
    completion_window: str | None = None


def parse_create(body: bytes) -> CreateBody:
    """Validate a create body; raise InvalidRequest naming the bad path."""
    parsed = paths.parse_body(CreateBody, body)
    # The batch object is OpenAI's, so its fields are held to OpenAI's rules.
    if parsed.completion_window is not None:
        openai.check_completion_window(parsed.completion_window)
    openai.check_metadata(parsed.metadata)
    check_inline_requests(parsed.requests)
    return parsed


# The Messages API's temperature range; the canonical request allows Chat
# Completions' 0..2, so requests in Messages terms are held to this here.
MESSAGES_MAX_TEMPERATURE = 1.0


def check_inline_requests(requests: Sequence[InlineRequest]) -> None:
    """What the Messages-shaped dialects (native, Anthropic) check beyond the
    types: unique custom_ids, and Messages' own parameter ranges."""
    check_unique_custom_ids([item.custom_id for item in requests])
    for index, item in enumerate(requests):
        for internal in ("raw_prompt", "settings_echoed", "user", "max_tokens_defaulted"):
            if getattr(item.params, internal) is not None:
                # Internal to OpenAI-dialect lines; not a Messages parameter.
                param = f"requests[{index}].params.{internal}"
                raise errors.InvalidRequest(f"{param}: Extra inputs are not permitted", param=param)
        temperature = item.params.temperature
        if temperature is not None and temperature > MESSAGES_MAX_TEMPERATURE:
            param = f"requests[{index}].params.temperature"
            raise errors.InvalidRequest(
                f"{param}: must be between 0 and {MESSAGES_MAX_TEMPERATURE:g}, got {temperature:g}",
                param=param,
            )


def check_unique_custom_ids(custom_ids: list[str], prefix: str = "requests") -> None:
    first_seen: dict[str, int] = {}
    for index, custom_id in enumerate(custom_ids):
        if custom_id in first_seen:
            raise errors.InvalidRequest(
                f"duplicate custom_id {custom_id!r} at {prefix}[{index}] "
                f"(first used at {prefix}[{first_seen[custom_id]}]); custom_ids must be unique "
                "within a batch",
                param=f"{prefix}[{index}].custom_id",
                code="duplicate_custom_id",
            )
        first_seen[custom_id] = index


def render_batch(batch: Batch) -> dict[str, Any]:
    return openai_objects.batch_object(batch)


def input_line(custom_id: str, request: canonical.Request) -> bytes:
    """One line of the input file kept for an inline batch: the shape a
    native create body's requests have, ``{"custom_id", "params"}``."""
    params = request.model_dump(exclude_none=True)
    return orjson.dumps({"custom_id": custom_id, "params": params}) + b"\n"


def render_created(batch: Batch, input_file: file_model.FileRecord) -> dict[str, Any]:
    """The create response: the batch object, plus the aliases native
    clients read (``batch_id``, ``batch``) and the input file made from the
    inline requests."""
    obj = render_batch(batch)
    return {
        **obj,
        "batch_id": batch.id,
        "batch": obj,
        "file_id": input_file.id,
        "file": openai_objects.file_object(input_file),
    }
