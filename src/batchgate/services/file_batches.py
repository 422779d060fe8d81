"""OpenAI file batches: an uploaded JSONL file becomes a batch.

Two streaming passes over the stored file, so neither the file nor its
requests are ever held whole in memory:

1. validate every line (JSON, shape, url, body translation, unique
   custom_ids), collecting an error for each bad one; only the set of
   custom_ids is kept;
2. if all lines are good, read the file again and feed the translated
   requests to the store as a generator. A file with bad lines instead makes a
   ``failed`` batch naming every bad line, as OpenAI does.

Re-translating in pass 2 costs about as much as pass 1 (~10 us a line) and is
cheaper in memory and code than spooling translated requests. Pass 2 runs in
the store's write transaction, so a 50k-line file holds SQLite's writer lock
for roughly a second; a file past the request limit is refused (400) in pass 1
before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from batchgate import config
from batchgate.dialects import openai
from batchgate.domain import errors
from batchgate.domain.batch import Batch
from batchgate.domain.states import Dialect
from batchgate.services.batches import BatchService, ParsedRequest
from batchgate.services.files import FileService
from batchgate.store import port

_BOM = b"\xef\xbb\xbf"


def iter_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for every non-blank line of a chunked
    file; lines may span chunks, ``\\r\\n`` endings and a UTF-8 BOM are accepted."""
    number = 0
    tail = b""
    for chunk in chunks:
        pieces = (tail + chunk).split(b"\n")
        tail = pieces.pop()
        for piece in pieces:
            number += 1
            if number == 1:
                piece = piece.removeprefix(_BOM)
            line = piece.rstrip(b"\r")
            if line.strip():
                yield number, line
    if tail.strip():
        number += 1
        yield number, tail.removeprefix(_BOM) if number == 1 else tail


class FileBatchService:
    def __init__(
        self, batches: BatchService, files: FileService, settings: config.Settings
    ) -> None:
        self.batches = batches
        self.files = files
        self.settings = settings

    def create(self, owner: str, body: openai.CreateBody) -> Batch:
        record = self.files.input_file(owner, body.input_file_id)
        line_errors, total = self._validate(record, body.endpoint)
        if not line_errors and total == 0:
            line_errors = [openai.empty_file_error()]
        common: dict[str, Any] = {
            "owner": owner,
            "dialect": Dialect.OPENAI,
            "endpoint": body.endpoint,
            "metadata": body.metadata,
            "input_file_id": record.id,
        }
        if line_errors:
            return self.batches.create_failed(line_errors=line_errors, **common)
        return self.batches.create_streamed(
            total=total, requests=self._requests(record, body.endpoint), **common
        )

    def _validate(self, record: port.FileRecord, endpoint: str) -> tuple[list[dict[str, Any]], int]:
        """Pass 1: an error for every bad line, and the number of requests."""
        limit = self.settings.limits.max_requests_per_batch
        first_line: dict[str, int] = {}
        line_errors: list[dict[str, Any]] = []
        count = 0
        for number, raw in iter_lines(self.files.chunks(record)):
            count += 1
            if count > limit:
                raise errors.InvalidRequest(
                    f"the input file holds more than {limit} requests (line {number} is "
                    f"request {count}); split it into several batches",
                    param="input_file_id",
                    code="batch_too_large",
                )
            parsed = openai.parse_line(raw, number, endpoint)
            if isinstance(parsed, openai.LineError):
                line_errors.append(parsed.to_json())
                continue
            seen = first_line.setdefault(parsed.custom_id, number)
            if seen != number:
                line_errors.append(openai.duplicate_error(number, parsed.custom_id, seen).to_json())
        return line_errors, count

    def _requests(self, record: port.FileRecord, endpoint: str) -> Iterator[ParsedRequest]:
        """Pass 2: the (now known good) lines as canonical requests."""
        for number, raw in iter_lines(self.files.chunks(record)):
            parsed = openai.parse_line(raw, number, endpoint)
            if isinstance(parsed, openai.LineError):  # the file changed since pass 1
                raise errors.Conflict(f"line {number} of the input file changed: {parsed.message}")
            yield ParsedRequest(parsed.custom_id, parsed.request)
