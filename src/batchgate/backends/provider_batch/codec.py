"""Upstream lines both ways, for OpenAI's Batch API and Anthropic's Message
Batches. A line's request body is what the real-time backend of the same
provider would send (``openai_bodies``, ``anthropic.messages_body``) and a
reply is read by the same readers, so usage and finish reasons come out the
same on either path. The ``custom_id`` upstream is the row's request id.

OpenAI result lines (output and error file alike)::

    {"custom_id", "response": {"status_code", "body"}, "error": null}
    {"custom_id", "response": null, "error": {"code", "message"}}

A 2xx ``response`` is the reply; another status is the request's error,
classified as a real-time call's would be (``http_errors``: 429 and 5xx
retryable). ``error`` with ``batch_expired`` / ``batch_cancelled`` means the
provider never ran the row: it stays unfinished. Anthropic results::

    {"custom_id", "result": {"type": "succeeded", "message": {...}}}
    {"custom_id", "result": {"type": "errored", "error": {"type": "error", "error": {...}}}}
    {"custom_id", "result": {"type": "canceled" | "expired"}}

An ``errored`` result's error type is batchgate's own vocabulary
(Anthropic's); server-side types (``api_error``, ``overloaded_error``,
``rate_limit_error``, ``timeout_error``) are retryable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from batchgate import canonical
from batchgate.backends import anthropic, base, http_client, http_errors, openai_bodies
from batchgate.backends.provider_batch import LineResult, ResultLine
from batchgate.canonical import chat
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.endpoints import Endpoint
from batchgate.wire.openai import chat_completions

log = logging.getLogger("batchgate.upstream_jobs")

# OpenAI's codes for a line the batch never ran.
_NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})
# Anthropic's result types for a row the batch never ran.
_ANTHROPIC_NOT_RUN = frozenset({"canceled", "expired"})
_RETRYABLE_TYPES = frozenset(
    {
        failures.ErrorType.API,
        failures.ErrorType.OVERLOADED,
        failures.ErrorType.RATE_LIMIT,
        failures.ErrorType.TIMEOUT,
    }
)


def _failed(request_id: int, error: base.BackendError) -> LineResult:
    return LineResult(request_id, error=error.request_error(), retryable=error.retryable)


def _unreadable(request_id: int, detail: str) -> LineResult:
    """A line whose shape is not a result: final, as an unreadable
    real-time reply is."""
    return _failed(request_id, http_client.unreadable_reply("a batch result line", detail))


class OpenAICodec:
    """Lines of an OpenAI batch whose every request goes to ``endpoint``."""

    def __init__(
        self, endpoint: Endpoint, *, upstream_model: str, options: openai_bodies.WireOptions
    ) -> None:
        self.endpoint = endpoint
        self._upstream_model = upstream_model
        self._options = options

    def encode(self, request_id: int, request: canonical.Request) -> bytes:
        try:
            body = openai_bodies.request_body(
                self.endpoint, request, upstream_model=self._upstream_model, options=self._options
            )
        except chat_completions.TranslationError as exc:
            raise openai_bodies.unsupported(exc) from None
        line = {
            "custom_id": uj.upstream_custom_id(request_id),
            "method": "POST",
            "url": self.endpoint.value,
            "body": body,
        }
        return orjson.dumps(line)

    def decode(self, line: ResultLine, request: canonical.Request) -> LineResult:
        response = line.data.get("response")
        if isinstance(response, dict):
            return self._response(line.request_id, response, request)
        error = line.data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            if code in _NOT_RUN:
                return LineResult(line.request_id)
            message = error.get("message") or code or "the upstream batch failed this request"
            return LineResult(
                line.request_id,
                error=failures.RequestError(
                    failures.ErrorType.API,
                    f"upstream batch: {message}",
                    code=code if isinstance(code, str) else None,
                ),
            )
        return _unreadable(line.request_id, "it has neither a response nor an error")

    def _response(
        self, request_id: int, response: dict[str, Any], request: canonical.Request
    ) -> LineResult:
        status = response.get("status_code")
        body = response.get("body")
        if not isinstance(status, int):
            return _unreadable(request_id, "its response has no status_code")
        if not 200 <= status < 300:
            # The body as the real-time path would have read it off the wire.
            raw = orjson.dumps(body) if not isinstance(body, str) else body.encode()
            return _failed(request_id, http_errors.error_from_status(status, {}, raw))
        try:
            reply = openai_bodies.read_reply(self.endpoint, body, request)
        except base.BackendError as exc:
            return _failed(request_id, exc)
        return LineResult(request_id, response=reply)


class AnthropicCodec:
    """Requests of an Anthropic Message Batch."""

    def __init__(self, *, upstream_model: str) -> None:
        self._upstream_model = upstream_model

    def encode(self, request_id: int, request: canonical.Request) -> bytes:
        if not isinstance(request, chat.ChatRequest):
            raise base.UnsupportedRequest("the Message Batches API serves no embeddings")
        params = anthropic.messages_body(request, upstream_model=self._upstream_model)
        return orjson.dumps({"custom_id": uj.upstream_custom_id(request_id), "params": params})

    def decode(self, line: ResultLine, request: canonical.Request) -> LineResult:
        result = line.data.get("result")
        kind = result.get("type") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(kind, str):
            return _unreadable(line.request_id, "it has no result type")
        if kind in _ANTHROPIC_NOT_RUN:
            return LineResult(line.request_id)
        if kind == "errored":
            return _anthropic_error(line.request_id, result.get("error"))
        if kind != "succeeded":
            return _unreadable(line.request_id, f"unknown result type {kind!r}")
        try:
            reply = anthropic.response_from_message(result.get("message"))
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            unreadable = http_client.unreadable_reply("a Messages reply", str(exc))
            return _failed(line.request_id, unreadable)
        return LineResult(line.request_id, response=reply)


def _anthropic_error(request_id: int, error: object) -> LineResult:
    """An ``errored`` result: ``{"type": "error", "error": {"type",
    "message"}}`` (or the inner object alone)."""
    inner = error.get("error", error) if isinstance(error, dict) else None
    if not isinstance(inner, dict):
        return _unreadable(request_id, "its error has no type")
    error_type = failures.ErrorType.parse(inner.get("type"))
    message = inner.get("message")
    text = message if isinstance(message, str) and message else error_type.value
    return LineResult(
        request_id,
        error=failures.RequestError(error_type, f"upstream batch: {text}"),
        retryable=error_type in _RETRYABLE_TYPES,
    )


def parse_line(raw: bytes) -> ResultLine | None:
    """One result line, if it is one of ours (a line that is not JSON, or
    whose custom_id is not a request id, is skipped: the row it might have
    answered stays unfinished and goes into another job)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("skipping a result line that is not JSON: %r", raw[:200])
        return None
    request_id = uj.request_id_from(data.get("custom_id")) if isinstance(data, dict) else None
    if request_id is None:
        return None
    return ResultLine(request_id, data)


async def read_results(
    http: http_client.PooledClient, url: str, headers: dict[str, str]
) -> AsyncIterator[ResultLine]:
    """The result lines of a file at ``url`` that are ours, as they stream."""
    async for raw in http_client.stream_lines(http, url, headers):
        line = parse_line(raw)
        if line is not None:
            yield line
