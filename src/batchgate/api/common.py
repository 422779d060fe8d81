"""Helpers shared by the dialect routers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, TypeVar

import fastapi
import orjson

T = TypeVar("T")

_STREAM_CHUNK = 64 * 1024


class JsonResponse(fastapi.Response):
    """JSON rendered with orjson (fast on large objects; FastAPI's own
    ORJSONResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def raw_body(request: fastapi.Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, fastapi.Depends(raw_body)]


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
