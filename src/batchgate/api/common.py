"""Helpers shared by the dialect routers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, TypeVar

import fastapi
import orjson
from fastapi.responses import StreamingResponse

from batchgate.api import deps
from batchgate.dialects import message_results, openai
from batchgate.domain import errors, partial_results
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.states import Dialect

T = TypeVar("T")

_STREAM_CHUNK = 64 * 1024


class JsonResponse(fastapi.Response):
    """JSON rendered with orjson (fast on large objects; FastAPI's own
    ORJSONResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# Bodies that hold a few short fields (a retry's error types, a webhook
# endpoint, a key): far more than any valid one needs.
SMALL_BODY_BYTES = 64 * 1024


async def read_capped(
    request: fastapi.Request, limit: int, too_large: errors.BatchgateError
) -> bytes:
    """The request body, refused with ``too_large`` as soon as the declared
    length or the bytes received so far pass ``limit`` (a chunked body has no
    declared length): never more than ``limit`` plus one chunk is held."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# Each body dependency depends on the caller's key (or admin key), so FastAPI
# checks the key before one byte of the body is read: a client without a
# valid key cannot make the server buffer anything.
async def create_body(
    request: fastapi.Request, _caller: deps.CallerDep, services: deps.ServicesDep
) -> bytes:
    """A batch create body, up to ``[limits] max_body_bytes``."""
    limit = services.settings.limits.max_body_bytes
    return await read_capped(request, limit, _too_large(limit))


async def small_body(request: fastapi.Request, _caller: deps.CallerDep) -> bytes:
    return await read_capped(request, SMALL_BODY_BYTES, _too_large_small())


async def admin_body(request: fastapi.Request, _admin: deps.AdminDep) -> bytes:
    return await read_capped(request, SMALL_BODY_BYTES, _too_large_small())


def _too_large(limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"the request body is larger than {limit:,} bytes (max_body_bytes); split the "
        "batch, or upload the requests as a file",
        code="request_too_large",
    )


def _too_large_small() -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"the request body is larger than {SMALL_BODY_BYTES:,} bytes, far more than this "
        "route's fields need",
        code="request_too_large",
    )


RawBody = Annotated[bytes, fastapi.Depends(create_body)]
SmallBody = Annotated[bytes, fastapi.Depends(small_body)]
AdminBody = Annotated[bytes, fastapi.Depends(admin_body)]


def json_lines(items: Iterable[T], render: Callable[[T], Any]) -> Iterator[bytes]:
    """Render items as JSONL, yielded in chunks of about 64 KiB: one write per
    line would make large downloads syscall-bound."""
    buffer = bytearray()
    for item in items:
        buffer += orjson.dumps(render(item))
        buffer += b"\n"
        if len(buffer) >= _STREAM_CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def wants_json_only(accept: str | None) -> bool:
    """True when the Accept header names application/json and nothing else
    (the OpenAI SDK sends exactly that); ``*/*`` or no header is False."""
    if not accept:
        return False
    types = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    return bool(types) and all(kind == "application/json" for kind in types)


def results_so_far(
    services: deps.Services, batch: Batch, status: list[str] | None, media_type: str
) -> StreamingResponse:
    """The batch's finished requests so far (``status`` filters their
    states) in its dialect's line shape; the header
    ``X-Batchgate-Results-Complete`` says whether every request is in it."""
    rows = services.batches.results(batch, partial_results.parse_status_filter(status or []))
    return StreamingResponse(
        result_lines(batch, rows),
        media_type=media_type,
        headers=partial_results.complete_header(batch.status.is_ended),
    )


def result_lines(batch: Batch, rows: Iterable[ResultRow]) -> Iterator[bytes]:
    """A batch's result rows as JSONL in the shape its own dialect serves:
    OpenAI's output/error file lines, or Anthropic's result lines (native
    and Anthropic batches)."""
    if batch.dialect is Dialect.OPENAI:
        return json_lines(rows, lambda row: openai.result_line(batch, row))
    return json_lines(rows, message_results.result_line)
