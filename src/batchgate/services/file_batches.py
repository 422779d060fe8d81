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

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from batchgate import canonical, config
from batchgate.dialects import input_limits, openai
from batchgate.domain import errors, failures
from batchgate.domain import files as file_model
from batchgate.domain.batch import Batch
from batchgate.domain.states import Dialect
from batchgate.services.batch_create import BatchCreation, ParsedRequest
from batchgate.services.files import FileService

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


class Checked(NamedTuple):
    """What pass 1 found in a file."""

    errors: list[failures.InputError]  # the first MAX_KEPT_LINE_ERRORS
    total: int  # requests (lines that are not blank)
    tokens: dict[str, int]  # input tokens per configured model, good lines
    model: str | None  # the one model every line names (None: several, or none)
    error_count: int  # every line error, kept or not


@dataclasses.dataclass
class _Seen:
    """What pass 1 gathers besides the errors it yields."""

    each: Callable[[canonical.Request], None] | None
    total: int = 0
    tokens: dict[str, int] = dataclasses.field(default_factory=dict)
    models: set[str] = dataclasses.field(default_factory=set)

    def note_model(self, raw: bytes, parsed: openai.ParsedLine | failures.InputError) -> None:
        if len(self.models) >= 2:  # one model or several: no need to keep more
            return
        if isinstance(parsed, failures.InputError):
            named = openai.model_named(raw)
        else:
            named = parsed.request.model
        # A name too long or odd for the model column is not kept: the
        # line's own error already says what is wrong with it.
        if named is not None and input_limits.model_is_storable(named):
            self.models.add(named)


class FileBatchService:
    def __init__(
        self, creation: BatchCreation, files: FileService, limits: config.LimitsSettings
    ) -> None:
        self.creation = creation
        self.files = files
        self.limits = limits

    def create(self, owner: str, body: openai.CreateBody) -> Batch:
        record = self.files.input_file(owner, body.input_file_id)
        checked = self.validate(record, body.endpoint)
        line_errors, error_count = checked.errors, checked.error_count
        if not line_errors and checked.total == 0:
            line_errors, error_count = [openai.empty_file_error()], 1
        common: dict[str, Any] = {
            "owner": owner,
            "dialect": Dialect.OPENAI,
            "endpoint": body.endpoint,
            "metadata": body.metadata,
            "input_file_id": record.id,
            "output_expires_after": openai.output_ttl(body),
        }
        if line_errors:
            return self.creation.create_failed(
                line_errors=line_errors, error_count=error_count, model=checked.model, **common
            )
        return self.creation.create_streamed(
            total=checked.total,
            requests=self._requests(record, body.endpoint),
            tokens=checked.tokens,
            **common,
        )

    def validate(
        self,
        record: file_model.FileRecord,
        endpoint: str,
        each: Callable[[canonical.Request], None] | None = None,
    ) -> Checked:
        """Pass 1: the first MAX_KEPT_LINE_ERRORS line errors and how many
        there are, the number of requests, their input tokens per model (for
        the quota check) and the model the lines name, bad ones included (a
        failed batch shows it); ``each`` sees every good request (a dry
        run's estimate). Keeping only the first errors bounds both this
        pass's memory and the batch object (20k bad lines were 3.3 MB)."""
        seen = _Seen(each)
        kept: list[failures.InputError] = []
        found = 0
        for error in self._line_errors(record, endpoint, seen):
            found += 1
            if len(kept) < failures.MAX_KEPT_LINE_ERRORS:
                kept.append(error)
        model = next(iter(seen.models)) if len(seen.models) == 1 else None
        return Checked(kept, seen.total, seen.tokens, model, found)

    def all_line_errors(self, batch: Batch) -> Iterator[failures.InputError]:
        """Every line error of a batch that failed validation, checked again
        from its input file (the batch keeps the first ones only). The file
        is looked up now, so a deleted one is a 404 before any line is sent."""
        kept = list(batch.errors or [])
        if batch.input_file_id is None or batch.error_count <= len(kept):
            return iter(kept)
        record = self.files.input_file(batch.owner, batch.input_file_id)
        return self._line_errors(record, batch.endpoint, _Seen(None))

    def _line_errors(
        self, record: file_model.FileRecord, endpoint: str, seen: _Seen
    ) -> Iterator[failures.InputError]:
        """The file's line errors in line order; ``seen`` collects the rest."""
        limit = self.limits.max_requests_per_batch
        first_line: dict[str, int] = {}
        for number, raw in iter_lines(self.files.chunks(record)):
            seen.total += 1
            if seen.total > limit:
                raise errors.InvalidRequest(
                    f"the input file holds more than {limit} requests (line {number} is "
                    f"request {seen.total}); split it into several batches",
                    param="input_file_id",
                    code="batch_too_large",
                )
            parsed = openai.parse_line(raw, number, endpoint)
            seen.note_model(raw, parsed)
            if isinstance(parsed, failures.InputError):
                yield parsed
                continue
            limit_error = self._over_limits(number, parsed)
            if limit_error is not None:
                yield limit_error
                continue
            first = first_line.setdefault(parsed.custom_id, number)
            if first != number:
                yield openai.duplicate_error(number, parsed.custom_id, first)
            self.creation.add_tokens(seen.tokens, parsed.request)
            if seen.each is not None:
                seen.each(parsed.request)

    def _over_limits(self, number: int, parsed: openai.ParsedLine) -> failures.InputError | None:
        """The named input limits, as a line error (``param`` is the path
        within the line: ``custom_id``, ``body.messages[3].content``...)."""
        try:
            input_limits.check_custom_id(parsed.custom_id, "custom_id", anthropic=False)
            input_limits.check_request(parsed.request, self.creation.input_limits, "body")
            self.creation.check_ranges(parsed.request, "body")
        except errors.InvalidRequest as exc:
            # OpenAI's line codes: the limit's own, else invalid_value.
            code = exc.code if exc.code != errors.InvalidRequest.code else None
            return failures.InputError(
                number, code or input_limits.INVALID_VALUE, exc.message, exc.param
            )
        return None

    def _requests(self, record: file_model.FileRecord, endpoint: str) -> Iterator[ParsedRequest]:
        """Pass 2: the (now known good) lines as canonical requests."""
        for number, raw in iter_lines(self.files.chunks(record)):
            parsed = openai.parse_line(raw, number, endpoint)
            if isinstance(parsed, failures.InputError):  # the file changed since pass 1
                raise errors.Conflict(f"line {number} of the input file changed: {parsed.message}")
            yield ParsedRequest(parsed.custom_id, parsed.request)
