"""The OpenAI dialect: Files + Batch API wire shapes (pure: no I/O).

* :func:`parse_create` checks a ``POST /v1/batches`` body that names an
  ``input_file_id``.
* :func:`parse_line` reads one line of an input file into a request or an
  :class:`~batchgate.domain.failures.InputError` (the batch then fails naming
  every bad line).
* :func:`batch_object`, :func:`file_object` and :func:`result_line` render
  what the SDK reads back; :func:`result_file_bytes` measures a result file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from batchgate import canonical
from batchgate.canonical import chat, embeddings
from batchgate.dialects import input_limits, message_results, openai_objects, paths
from batchgate.domain import errors, failures, result_files, retention
from batchgate.domain import files as file_model
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.endpoints import Endpoint
from batchgate.domain.failures import ErrorType, InputError
from batchgate.domain.states import RequestState
from batchgate.wire.openai import chat_completions, completions
from batchgate.wire.openai import embeddings as openai_embeddings
from batchgate.wire.openai import responses as responses_api

CHAT_COMPLETIONS = Endpoint.CHAT_COMPLETIONS.value
SUPPORTED_ENDPOINTS = tuple(endpoint.value for endpoint in Endpoint)
COMPLETION_WINDOWS = ("24h",)
FILE_PURPOSES = (file_model.FilePurpose.BATCH,)

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_CUSTOM_ID = 256  # the store's column width (PostgreSQL enforces it)


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    input_file_id: input_limits.SafeStr
    endpoint: str
    completion_window: str
    metadata: dict[input_limits.SafeStr, input_limits.SafeStr] | None = None
    # How long the output and error files live, from their creation (when
    # the batch ends): {"anchor": "created_at", "seconds": 3600..2592000}.
    output_expires_after: dict[str, Any] | None = None


def parse_create(body: bytes) -> CreateBody:
    """Validate a file-batch create body; raise InvalidRequest naming the field."""
    parsed = paths.parse_body(CreateBody, body)
    if parsed.endpoint not in SUPPORTED_ENDPOINTS:
        raise errors.InvalidRequest(
            f"endpoint {parsed.endpoint!r} is not supported; supported endpoints: "
            + ", ".join(SUPPORTED_ENDPOINTS),
            param="endpoint",
            code="unsupported_endpoint",
        )
    check_completion_window(parsed.completion_window)
    check_metadata(parsed.metadata)
    output_ttl(parsed)  # validated now, before the input file is read
    return parsed


def check_completion_window(window: str) -> None:
    """Only OpenAI's one window is offered; another would be accepted and
    silently ignored."""
    if window not in COMPLETION_WINDOWS:
        raise errors.InvalidRequest(
            f"completion_window must be one of: {', '.join(COMPLETION_WINDOWS)}; "
            f"got {window!r:.40}",
            param="completion_window",
            code="invalid_value",
        )


def output_ttl(body: CreateBody) -> int | None:
    """The validated ``output_expires_after`` seconds (None: not given)."""
    policy = body.output_expires_after
    if policy is None:
        return None
    return retention.check_expires_after(
        policy.get("anchor"), policy.get("seconds"), "output_expires_after"
    )


def parse_file_expires_after(fields: dict[str, str]) -> int | None:
    """A file upload's ``expires_after``, sent as the multipart fields
    ``expires_after[anchor]`` and ``expires_after[seconds]`` (how the SDK
    flattens it); None when absent."""
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    try:
        number: object = int(seconds) if seconds is not None else None
    except ValueError:
        number = seconds
    return retention.check_expires_after(anchor, number, "expires_after")


def check_metadata(metadata: dict[str, str] | None) -> None:
    """OpenAI's metadata limits: 16 pairs, keys up to 64 and values up to 512 chars."""
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise errors.InvalidRequest(
            f"metadata may hold at most {MAX_METADATA_PAIRS} pairs; got {len(metadata)}",
            param="metadata",
            code="invalid_value",
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise errors.InvalidRequest(
                f"metadata keys may be at most {MAX_METADATA_KEY} characters; "
                f"{key[:20]!r}... has {len(key)}",
                param="metadata",
                code="invalid_value",
            )
        if len(value) > MAX_METADATA_VALUE:
            raise errors.InvalidRequest(
                f"metadata values may be at most {MAX_METADATA_VALUE} characters; "
                f"the value of {key!r} has {len(value)}",
                param=f"metadata.{key}",
                code="invalid_value",
            )


def check_purpose(purpose: str | None) -> file_model.FilePurpose:
    for allowed in FILE_PURPOSES:
        if purpose == allowed.value:
            return allowed
    raise errors.InvalidRequest(
        f"purpose {purpose!r} is not supported; batchgate stores files for: "
        + ", ".join(FILE_PURPOSES),
        param="purpose",
        code="invalid_value",
    )


# -- input lines -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParsedLine:
    custom_id: str
    request: canonical.Request


# Each endpoint's body -> the canonical request (TranslationError on a bad body).
_READERS: dict[Endpoint, Callable[..., canonical.Request]] = {
    Endpoint.CHAT_COMPLETIONS: chat_completions.request_from_chat_completions,
    Endpoint.RESPONSES: responses_api.request_from_responses,
    Endpoint.COMPLETIONS: completions.request_from_completions,
    Endpoint.EMBEDDINGS: openai_embeddings.request_from_openai,
}


_LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})


def parse_line(raw: bytes, line: int, endpoint: str) -> ParsedLine | InputError:
    """One input line ``{custom_id, method: "POST", url, body}``; the body is
    translated to the canonical request by the batch's endpoint's own rules,
    so it fails here, not later. Codes are OpenAI's; a body's errors carry
    the code of what was wrong (``missing_required_parameter``,
    ``invalid_type``, ``unsupported_parameter``, ...) and its path."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return InputError(line, "invalid_json_line", f"line {line} is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return InputError(line, "invalid_json_line", f"line {line} is not a JSON object")
    for key in obj:
        if key not in _LINE_KEYS:
            return InputError(line, "unknown_parameter", f"unrecognized field {key!r}", key)
    for key in ("custom_id", "method", "url", "body"):
        if obj.get(key) is None:
            return InputError(
                line, "missing_required_parameter", f"missing required field {key!r}", key
            )
    custom_id, method, url = obj["custom_id"], obj["method"], obj["url"]
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        return InputError(
            line,
            "invalid_value",
            f"custom_id must be a non-empty string of at most {MAX_CUSTOM_ID} characters",
            "custom_id",
        )
    if method != "POST":
        return InputError(line, "invalid_value", "method must be 'POST'", "method")
    if url != endpoint:
        return InputError(
            line,
            "url_mismatch",
            f"url {url!r} does not match the batch's endpoint {endpoint!r}",
            "url",
        )
    try:
        request = _READERS[Endpoint(endpoint)](obj["body"], path="body")
    except chat_completions.TranslationError as exc:
        return InputError(line, exc.code, exc.message, exc.param)
    return ParsedLine(custom_id, request)


def model_named(raw: bytes) -> str | None:
    """The ``body.model`` a line names, read as far as the line allows (a bad
    line may still name its model); None if it names none."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    body = obj.get("body") if isinstance(obj, dict) else None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) and model else None


def duplicate_error(line: int, custom_id: str, first_line: int) -> InputError:
    return InputError(
        line,
        "duplicate_custom_id",
        f"custom_id {custom_id!r} was already used on line {first_line}; custom_ids must be "
        "unique within a batch",
        "custom_id",
    )


def empty_file_error() -> InputError:
    return InputError(None, "empty_file", "the input file holds no requests")


# -- rendering ---------------------------------------------------------------


def batch_object(batch: Batch) -> dict[str, Any]:
    """The batch object, naming its result files once it has ended."""
    files: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
    if batch.status.is_ended and batch.dialect in result_files.DIALECTS:
        for kind in result_files.kinds_present(batch.tally):
            key = "output_file_id" if kind is file_model.FileKind.OUTPUT else "error_file_id"
            files[key] = result_files.file_id(batch.id, kind)
    return openai_objects.batch_object(batch, **files)


def file_object(record: file_model.FileRecord) -> dict[str, Any]:
    return openai_objects.file_object(record)


def file_list(records: list[file_model.FileRecord], has_more: bool) -> dict[str, Any]:
    data = [file_object(record) for record in records]
    return openai_objects.list_page(data, has_more)


def deleted_file(file_id: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "deleted": True}


def _suffix(batch_id: str, index: int) -> str:
    """Stable id part for a result line, derived from the batch and the
    request's position: a rendered file is byte-identical on every download,
    so the size it reports stays true."""
    return f"{batch_id.split('_', 1)[-1]}{index:08x}"


_UNFINISHED = {
    RequestState.CANCELED: ("batch_cancelled", "the batch was cancelled before this request ran"),
    RequestState.EXPIRED: (
        "batch_expired",
        "this request could not be run before the batch's completion window ended",
    ),
}


def result_line(batch: Batch, row: ResultRow) -> dict[str, Any]:
    """One line of the output file (succeeded) or the error file (the rest),
    with the path that served a provider-batch model's row (the same
    extension as the Message Batches lines)."""
    return message_results.with_served_by(_result_line(batch, row), row)


def _result_line(batch: Batch, row: ResultRow) -> dict[str, Any]:
    """OpenAI's own line. Called once per line of a download: kept to one
    dict build per branch."""
    suffix = _suffix(batch.id, row.index)
    if row.state is RequestState.SUCCEEDED and row.result is not None:
        body = _success_body(batch, row, suffix)
        response = {"status_code": 200, "request_id": f"req_{suffix}", "body": body}
        return {
            "id": f"batch_req_{suffix}",
            "custom_id": row.custom_id,
            "response": response,
            "error": None,
        }
    unfinished = _UNFINISHED.get(row.state)
    if unfinished is not None:
        return {
            "id": f"batch_req_{suffix}",
            "custom_id": row.custom_id,
            "response": None,
            "error": {"code": unfinished[0], "message": unfinished[1]},
        }
    error = row.error or failures.UNKNOWN_REQUEST_ERROR
    status = error.status_code or (400 if error.type is ErrorType.INVALID_REQUEST else 500)
    error_body = {
        "error": {
            "message": error.message,
            "type": error.type.value,
            "param": None,
            "code": error.code,
        }
    }
    return {
        "id": f"batch_req_{suffix}",
        "custom_id": row.custom_id,
        "response": {"status_code": status, "request_id": f"req_{suffix}", "body": error_body},
        "error": None,
    }


def _success_body(batch: Batch, row: ResultRow, suffix: str) -> dict[str, Any]:
    """The endpoint's own response body for a succeeded request."""
    created = int(row.finished_at or batch.created_at)
    assert row.result is not None
    if batch.endpoint == Endpoint.EMBEDDINGS:
        request = canonical.load(row.params or "{}")
        assert isinstance(request, embeddings.EmbeddingRequest)
        reply = embeddings.EmbeddingResponse.model_validate(row.result)
        return openai_embeddings.response_to_openai(reply, request)
    response = chat.ChatResponse.model_validate(row.result)
    if batch.endpoint == Endpoint.RESPONSES:
        chat_request = canonical.load(row.params or "{}")
        assert isinstance(chat_request, chat.ChatRequest)
        return responses_api.response_to_responses(
            response, chat_request, response_id=f"resp_{suffix}", created=created
        )
    if batch.endpoint == Endpoint.COMPLETIONS:
        return completions.response_to_completion(
            response, completion_id=f"cmpl-{suffix}", created=created
        )
    return chat_completions.response_to_chat_completion(response, created=created)


def result_file_bytes(batch: Batch, rows: Iterator[ResultRow]) -> int:
    """The size of a result file: its lines as a download renders them."""
    return sum(len(orjson.dumps(result_line(batch, row))) + 1 for row in rows)
