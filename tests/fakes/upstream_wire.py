"""HTTP primitives the fake upstream's route modules share: fault specs, the
Action a request resolves to, and response bytes.

Kept apart from :mod:`tests.fakes.upstream` so :mod:`tests.fakes.upstream_batches`
can use them without importing the server module (which imports it; and run
as ``python -m tests.fakes.upstream`` that module is ``__main__``, so an
import of it would load a second copy with its own ``Fault`` class).
"""

from __future__ import annotations

import dataclasses
import email.utils
import http
import time
from collections.abc import Sequence
from typing import Any

import orjson

FaultSpec = str | int | dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str  # "ok" | "status" | "hang" | "drop"
    status: int = 200
    retry_after: float | None = None
    retry_after_ms: float | None = None
    retry_after_date: float | None = None
    message: str | None = None
    hang_seconds: float = 300.0
    # Batch API routes only: do the route's work first (a create creates, a
    # cancel cancels), then answer with the fault instead of the result, so
    # a client sees a failure for something that happened.
    after: bool = False

    @classmethod
    def parse(cls, spec: FaultSpec | Fault) -> Fault:
        if isinstance(spec, Fault):
            return spec
        if isinstance(spec, int):
            return cls(kind="status", status=spec)
        if isinstance(spec, str):
            if spec in ("ok", "hang", "drop"):
                return cls(kind=spec)
            status, _, after = spec.partition(":")
            return cls(
                kind="status", status=int(status), retry_after=float(after) if after else None
            )
        fields = dict(spec)
        kind = fields.pop("kind", "status" if "status" in fields else "ok")
        return cls(kind=kind, **fields)

    def label(self) -> str:
        return str(self.status) if self.kind == "status" else self.kind

    def headers(self) -> list[tuple[str, str]]:
        out = []
        if self.retry_after is not None:
            value = self.retry_after
            out.append(("retry-after", str(int(value)) if value == int(value) else str(value)))
        if self.retry_after_date is not None:
            date = email.utils.formatdate(time.time() + self.retry_after_date, usegmt=True)
            out.append(("retry-after", date))
        if self.retry_after_ms is not None:
            out.append(("retry-after-ms", str(self.retry_after_ms)))
        return out


@dataclasses.dataclass
class Action:
    """What to do with one request: wait ``delay`` seconds, then send
    ``response`` (bytes), or drop the connection, or hang, or ``stream``:
    send ``response`` (the head) and ``chunks`` one by one, ``chunk_delay``
    seconds apart."""

    delay: float
    kind: str  # "respond" | "drop" | "hang" | "stream"
    response: bytes = b""
    hang_seconds: float = 0.0
    chunks: Sequence[bytes] = ()
    chunk_delay: float = 0.0
    # A stream's call log entry: its ``sent`` counts the chunks written.
    progress: dict[str, Any] | None = None


def reason(status: int) -> str:
    if status == 529:
        return "Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def response_head(
    status: int,
    length: int,
    keep_alive: bool,
    content_type: str = "application/json",
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {reason(status)}",
        f"content-type: {content_type}",
        f"content-length: {length}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response(
    status: int, payload: Any, keep_alive: bool, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    body = orjson.dumps(payload)
    return response_head(status, len(body), keep_alive, headers=headers) + body


def raw_response(status: int, body: bytes, keep_alive: bool, content_type: str) -> bytes:
    return response_head(status, len(body), keep_alive, content_type) + body
