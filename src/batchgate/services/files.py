"""Files: uploaded batch input kept in the store, and result files rendered
on demand from request rows (domain/result_files.py)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from batchgate import config
from batchgate.dialects import openai
from batchgate.domain import errors, ids, result_files
from batchgate.domain.batch import Batch, ResultRow
from batchgate.domain.result_files import FileKind
from batchgate.store import port

MAX_LIST_LIMIT = 10_000  # OpenAI's own ceiling for GET /v1/files


@dataclasses.dataclass(frozen=True)
class Rendered:
    """A result file's lines: rows to render with ``render``, one JSON line each."""

    rows: Iterator[ResultRow]
    render: Callable[[ResultRow], dict[str, Any]]


class FileService:
    def __init__(self, store: port.JobStore, settings: config.Settings) -> None:
        self.store = store
        self.settings = settings

    def store_upload(
        self, owner: str, *, purpose: str, filename: str, chunks: Iterable[bytes]
    ) -> port.FileRecord:
        """Keep an upload's content; ``chunks`` come from a local spool, so the
        write transaction never waits on a client's network."""
        record = port.FileRecord(
            id=ids.new_file_id(),
            owner=owner,
            purpose=purpose,
            filename=filename,
            bytes=0,
            status="processed",
            created_at=time.time(),
        )
        return self.store.create_file(record, chunks)

    def get(self, owner: str, file_id: str, *, measure: bool = True) -> port.FileRecord:
        """The caller's file; ``measure`` sizes an unmeasured result file
        (not needed to download one)."""
        record = self.store.get_file(file_id, owner)
        if record is None:
            raise errors.NotFound(f"no file with id {file_id!r}", param="file_id")
        return self._measured(record) if measure else record

    def list(
        self, owner: str, *, purpose: str | None, limit: int, after: str | None, order: str
    ) -> tuple[list[port.FileRecord], bool]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise errors.InvalidRequest(
                f"limit must be between 1 and {MAX_LIST_LIMIT}", param="limit"
            )
        if order not in ("asc", "desc"):
            raise errors.InvalidRequest("order must be 'asc' or 'desc'", param="order")
        records, has_more = self.store.list_files(
            owner, purpose=purpose, limit=limit, after=after, ascending=order == "asc"
        )
        return [self._measured(record) for record in records], has_more

    def delete(self, owner: str, file_id: str) -> None:
        if not self.store.delete_file(file_id, owner, time.time()):
            raise errors.NotFound(f"no file with id {file_id!r}", param="file_id")

    def input_file(self, owner: str, file_id: str) -> port.FileRecord:
        """An uploaded file that a batch may read its requests from."""
        record = self.store.get_file(file_id, owner)
        if record is None:
            raise errors.NotFound(f"no file with id {file_id!r}", param="input_file_id")
        if record.kind != FileKind.STORED or record.purpose not in openai.FILE_PURPOSES:
            raise errors.InvalidRequest(
                f"file {file_id!r} has purpose {record.purpose!r}; a batch's input file must "
                "be uploaded with purpose 'batch'",
                param="input_file_id",
            )
        return record

    def chunks(self, record: port.FileRecord) -> Iterator[bytes]:
        """A stored file's content, a chunk at a time."""
        return self.store.iter_file_chunks(record.id)

    def rendered(self, record: port.FileRecord) -> Rendered:
        """A result file's lines, read from the request rows page by page."""
        batch = self._batch_of(record)
        kind = FileKind(record.kind)

        def render(row: ResultRow) -> dict[str, Any]:
            return openai.result_line(batch, row)

        return Rendered(self.store.iter_results(batch.id, result_files.states(kind)), render)

    def _batch_of(self, record: port.FileRecord) -> Batch:
        batch = None if record.batch_id is None else self.store.get_batch(record.batch_id)
        if batch is None:
            raise errors.NotFound(f"the batch of file {record.id!r} no longer exists")
        return batch

    def _measured(self, record: port.FileRecord) -> port.FileRecord:
        """A result file's size is only known once rendered; it is measured
        the first time the file is described and kept (an ended batch's rows
        never change, and rendering is deterministic)."""
        if record.kind == FileKind.STORED or record.status == "processed":
            return record
        content = self.rendered(record)
        size = sum(len(orjson.dumps(content.render(row))) + 1 for row in content.rows)
        self.store.set_file_bytes(record.id, size)
        return dataclasses.replace(record, bytes=size, status="processed")
