"""The OpenAI dialect: Files + Batch API wire shapes (pure: no I/O).

* :func:`parse_create` checks a ``POST /v1/batches`` body that names an
  ``input_file_id``.
* :func:`parse_line` reads one line of an input file into a request or a
  :class:`LineError` (the batch then fails naming every bad line).
* :func:`batch_object`, :func:`file_object` and :func:`result_line` render
  what the SDK reads back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from batchgate import chat, chat_completions
from batchgate.dialects import openai_objects, paths
from batchgate.domain import errors, result_files
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.states import RequestState
from batchgate.store.port import FileRecord

CHAT_COMPLETIONS = "/v1/chat/completions"
SUPPORTED_ENDPOINTS = (CHAT_COMPLETIONS,)
COMPLETION_WINDOWS = ("24h",)
FILE_PURPOSES = ("batch",)

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_CUSTOM_ID = 256  # the store's column width (PostgreSQL enforces it)
_MAX_MESSAGE = 500  # a line error's message is cut here: errors are stored per bad line


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    # Sent by newer SDKs; batchgate keeps rendered output for the batch's life.
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
    if parsed.completion_window not in COMPLETION_WINDOWS:
        raise errors.InvalidRequest(
            f"completion_window must be one of: {', '.join(COMPLETION_WINDOWS)}",
            param="completion_window",
            code="invalid_value",
        )
    check_metadata(parsed.metadata)
    return parsed


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


def check_purpose(purpose: str | None) -> str:
    if purpose not in FILE_PURPOSES:
        raise errors.InvalidRequest(
            f"purpose {purpose!r} is not supported; batchgate stores files for: "
            + ", ".join(FILE_PURPOSES),
            param="purpose",
            code="invalid_value",
        )
    return purpose


# -- input lines -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParsedLine:
    custom_id: str
    request: chat.ChatRequest


@dataclasses.dataclass(frozen=True)
class LineError:
    line: int  # 1-based, counting blank lines too
    code: str
    message: str
    param: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message[:_MAX_MESSAGE],
            "line": self.line,
            "param": self.param,
        }


_LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})


def parse_line(raw: bytes, line: int, endpoint: str) -> ParsedLine | LineError:
    """One input line ``{custom_id, method: "POST", url, body}``; the body is
    translated to the canonical chat request, so it fails here, not later."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return LineError(line, "invalid_json_line", f"line {line} is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return LineError(line, "invalid_json_line", f"line {line} is not a JSON object")
    for key in obj:
        if key not in _LINE_KEYS:
            return LineError(line, "invalid_request", f"unrecognized field {key!r}", key)
    for key in ("custom_id", "method", "url", "body"):
        if obj.get(key) is None:
            return LineError(
                line, "missing_required_parameter", f"missing required field {key!r}", key
            )
    custom_id, method, url = obj["custom_id"], obj["method"], obj["url"]
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        return LineError(
            line,
            "invalid_value",
            f"custom_id must be a non-empty string of at most {MAX_CUSTOM_ID} characters",
            "custom_id",
        )
    if method != "POST":
        return LineError(line, "invalid_value", "method must be 'POST'", "method")
    if url != endpoint:
        return LineError(
            line,
            "mismatched_url",
            f"url {url!r} does not match the batch's endpoint {endpoint!r}",
            "url",
        )
    try:
        request = chat_completions.request_from_chat_completions(obj["body"], path="body")
    except chat_completions.TranslationError as exc:
        return LineError(line, "invalid_body", exc.message, exc.param)
    return ParsedLine(custom_id, request)


def duplicate_error(line: int, custom_id: str, first_line: int) -> LineError:
    return LineError(
        line,
        "duplicate_custom_id",
        f"custom_id {custom_id!r} was already used on line {first_line}; custom_ids must be "
        "unique within a batch",
        "custom_id",
    )


def empty_file_error() -> dict[str, Any]:
    return {
        "code": "empty_file",
        "message": "the input file holds no requests",
        "line": None,
        "param": None,
    }


# -- rendering ---------------------------------------------------------------


def batch_object(batch: Batch) -> dict[str, Any]:
    """The batch object, naming its result files once it has ended."""
    files: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
    if batch.status.is_ended and batch.dialect in result_files.DIALECTS:
        for kind in result_files.kinds_present(batch.tally):
            key = "output_file_id" if kind is result_files.FileKind.OUTPUT else "error_file_id"
            files[key] = result_files.file_id(batch.id, kind)
    return openai_objects.batch_object(batch, **files)


def file_object(record: FileRecord) -> dict[str, Any]:
    return openai_objects.file_object(record)


def file_list(records: list[FileRecord], has_more: bool) -> dict[str, Any]:
    data = [file_object(record) for record in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


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
    """One line of the output file (succeeded) or the error file (the rest).
    Called once per line of a download: kept to one dict build per branch."""
    suffix = _suffix(batch.id, row.index)
    if row.state is RequestState.SUCCEEDED and row.result is not None:
        body = chat_completions.response_to_chat_completion(
            chat.ChatResponse.model_validate(row.result),
            created=int(row.finished_at or batch.created_at),
        )
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
    error = row.error or {}
    kind = str(error.get("type") or "api_error")
    status = error.get("status_code")
    if not isinstance(status, int):
        status = 400 if kind == "invalid_request_error" else 500
    body = {
        "error": {
            "message": str(error.get("message") or "the request failed"),
            "type": kind,
            "param": None,
            "code": error.get("code"),
        }
    }
    return {
        "id": f"batch_req_{suffix}",
        "custom_id": row.custom_id,
        "response": {"status_code": status, "request_id": f"req_{suffix}", "body": body},
        "error": None,
    }
