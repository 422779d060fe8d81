"""Streaming ``multipart/form-data`` uploads with a byte limit.

The body is fed to python-multipart's push parser chunk by chunk as it
arrives; the file part goes to an anonymous temporary file (spool) under the
data directory, never into memory, and its bytes are counted on the stream,
so a file past the limit is refused (413) as soon as the limit is crossed,
whatever ``Content-Length`` said or if there was none.

Why a spool rather than writing chunks straight into the database: the store
writes a file in one transaction (all or nothing), and on SQLite a write
transaction blocks every other writer, workers included. Holding it open while
a slow client trickles in 200 MB would stall the whole server; copying from a
local spool takes well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO

import fastapi
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from batchgate.dialects import input_limits
from batchgate.domain import errors

# What surrounds the file is small: OpenAI's upload sends ``purpose`` and at
# most ``expires_after[anchor]`` and ``expires_after[seconds]``. These caps
# keep a flood of form fields from filling memory, whatever the body's
# declared length (a chunked body declares none).
MAX_FORM_FIELDS = 16  # parts other than the file
MAX_FORM_BYTES = 64 * 1024  # their values and every part's headers, together
_FORM_OVERHEAD = 1024 * 1024  # boundaries, part headers and fields around the file
_WRITE_BATCH = 1024 * 1024  # spool writes happen off the event loop, a MiB at a time
READ_CHUNK = 1024 * 1024


@dataclasses.dataclass
class Upload:
    fields: dict[str, str]
    filename: str | None
    spool: IO[bytes]
    size: int

    def chunks(self) -> Iterator[bytes]:
        """The file's content from the start of the spool, a chunk at a time."""
        self.spool.seek(0)
        while chunk := self.spool.read(READ_CHUNK):
            yield chunk


class _Collector:
    """python-multipart callbacks: fields into memory (small), the one file
    part into the spool (counted)."""

    def __init__(
        self,
        file_field: str,
        max_file_bytes: int,
        spool: IO[bytes],
        on_file_start: Callable[[dict[str, str]], None],
    ) -> None:
        self.file_field = file_field
        self.max_file_bytes = max_file_bytes
        self.spool = spool
        self.on_file_start = on_file_start
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self.pending = bytearray()  # file bytes not yet written to the spool
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._name = ""
        self._in_file = False
        self._field = bytearray()
        self._form_bytes = 0
        self._field_count = 0
        self.ended = False  # the closing boundary was seen

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._field = bytearray()

    def _spend(self, size: int) -> None:
        """Count bytes held in memory for the form around the file."""
        self._form_bytes += size
        if self._form_bytes > MAX_FORM_BYTES:
            raise errors.InvalidRequest(
                f"the form's fields and part headers are larger than {MAX_FORM_BYTES:,} "
                "bytes in all; send the file and 'purpose' only",
                param=self._name or None,
            )

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._spend(end - start)
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._spend(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._in_file = b"filename" in options
        if not self._in_file:
            self._field_count += 1
            if self._field_count > MAX_FORM_FIELDS:
                raise errors.InvalidRequest(
                    f"the form has more than {MAX_FORM_FIELDS} fields besides the file; "
                    "send the file and 'purpose' only",
                    param=self._name or None,
                )
            return
        if self._name != self.file_field:
            raise errors.InvalidRequest(
                f"unexpected file field {self._name!r}; send the file as {self.file_field!r}",
                param=self._name,
            )
        if self.filename is not None:
            raise errors.InvalidRequest("send exactly one file", param=self.file_field)
        self.filename = _clean_filename(options[b"filename"].decode("utf-8", "replace"))
        self.on_file_start(self.fields)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.size += end - start
            if self.size > self.max_file_bytes:
                raise too_large(self.max_file_bytes)
            self.pending += data[start:end]
            return
        self._spend(end - start)
        self._field += data[start:end]

    def _part_end(self) -> None:
        if not self._in_file:
            self.fields[self._name] = self._field.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True


def too_large(limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"the file is larger than this server's limit of {limit} bytes",
        param="file",
        code="file_too_large",
    )


@contextlib.asynccontextmanager
async def receive(
    request: fastapi.Request,
    *,
    file_field: str,
    max_file_bytes: int,
    spool_dir: Path,
    on_file_start: Callable[[dict[str, str]], None] = lambda fields: None,
) -> AsyncIterator[Upload]:
    """Parse the request's multipart body as it streams in; the upload's
    spool lives as long as the context. ``on_file_start`` sees the fields
    sent before the file, so a bad field is refused before the file is read."""
    _kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if _kind != b"multipart/form-data" or not boundary:
        raise errors.InvalidRequest(
            "send the file as multipart/form-data (fields 'file' and 'purpose')",
            param=file_field,
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_file_bytes + _FORM_OVERHEAD:
        raise too_large(max_file_bytes)  # no need to read what is certain to be refused

    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir, prefix="upload-") as spool:
        collector = _Collector(file_field, max_file_bytes, spool, on_file_start)
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
        await _parse(request, parser, collector, max_body=max_file_bytes + _FORM_OVERHEAD)
        if not collector.ended:
            # python-multipart's finalize() does not check this: a body cut off
            # on a line break would otherwise be kept as a complete, shorter file.
            raise errors.InvalidRequest(
                "the multipart body ended before its closing boundary: the upload was "
                "cut short, and nothing was stored",
                param=file_field,
            )
        yield Upload(collector.fields, collector.filename, spool, collector.size)


async def _parse(
    request: fastapi.Request, parser: MultipartParser, collector: _Collector, *, max_body: int
) -> None:
    """Feed the body to the parser as it arrives; the whole body is bounded
    here as well, for a chunked one that declared no length."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise too_large(collector.max_file_bytes)
            parser.write(chunk)
            if len(collector.pending) >= _WRITE_BATCH:
                await _flush(collector)
        parser.finalize()
    except MultipartParseError as exc:
        raise errors.InvalidRequest(f"malformed multipart body: {exc}") from None
    await _flush(collector)


async def _flush(collector: _Collector) -> None:
    data = bytes(collector.pending)
    collector.pending.clear()
    if data:
        await asyncio.to_thread(collector.spool.write, data)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_FILENAME = input_limits.MAX_FILENAME_CHARS


def _clean_filename(raw: str) -> str:
    """The name to keep: control characters (PostgreSQL refuses NUL in text)
    become ``_``, and a name past the column width keeps its end, where the
    extension is."""
    name = _CONTROL.sub("_", raw) or "upload.jsonl"
    return name[-_MAX_FILENAME:]
