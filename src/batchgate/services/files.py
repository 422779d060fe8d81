"""Files: uploaded batch input kept in the store, and the rows that result
files are rendered from on demand (domain/result_files.py). Rendering is the
dialect's (dialects/openai.py); this service only hands out rows, and measures
a result file's size with the ``measure`` it was given."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from batchgate import config
from batchgate.domain import endpoints, errors, ids, quotas, result_files, retention
from batchgate.domain import files as file_model
from batchgate.domain.batch import Batch, ResultRow
from batchgate.store import port

MAX_LIST_LIMIT = 10_000  # OpenAI's own ceiling for GET /v1/files


# The size in bytes of a result file rendered from these rows.
Measure = Callable[[Batch, Iterator[ResultRow]], int]


class FileServiceStore(port.FileStore, port.BatchStore, Protocol):
    """The roles FileService uses: files, and the batches result files render."""


@dataclasses.dataclass(frozen=True)
class ResultRows:
    """A result file's rows, and the batch they belong to (rendering needs it)."""

    batch: Batch
    rows: Iterator[ResultRow]


class FileService:
    def __init__(
        self,
        store: FileServiceStore,
        *,
        retention: config.RetentionSettings,
        default_quotas: config.QuotaSettings,
        measure: Measure,
    ) -> None:
        self.store = store
        self.retention = retention
        self.default_quotas = default_quotas
        self.measure = measure

    def store_upload(
        self,
        owner: str,
        *,
        purpose: file_model.FilePurpose,
        filename: str,
        chunks: Iterable[bytes],
        expires_after: int | None = None,
    ) -> file_model.FileRecord:
        """Keep an upload's content; ``chunks`` come from a local spool, so the
        write transaction never waits on a client's network. It expires
        ``expires_after`` seconds from now (None: the configured retention)."""
        now = time.time()
        record = file_model.FileRecord(
            id=ids.new_file_id(),
            owner=owner,
            purpose=purpose,
            filename=filename,
            bytes=0,
            status=file_model.FileStatus.PROCESSED,
            created_at=now,
            expires_at=retention.expiry(now, self.retention.file_ttl(expires_after)),
        )
        admission = quotas.Admission(quotas.Demand(), self.default_quotas.defaults())
        return self.store.create_file(record, chunks, admission)

    def get(self, owner: str, file_id: str, *, measure: bool = True) -> file_model.FileRecord:
        """The caller's file; ``measure`` sizes an unmeasured result file
        (not needed to download one)."""
        record = self._kept(self.store.get_file(file_id, owner), file_id, "file_id")
        return self._measured(record) if measure else record

    def list(
        self, owner: str, *, purpose: str | None, limit: int, after: str | None, order: str
    ) -> tuple[list[file_model.FileRecord], bool]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise errors.InvalidRequest(
                f"limit must be between 1 and {MAX_LIST_LIMIT}", param="limit"
            )
        if order not in ("asc", "desc"):
            raise errors.InvalidRequest("order must be 'asc' or 'desc'", param="order")
        records, has_more = self.store.list_files(
            owner,
            purpose=purpose,
            limit=limit,
            after=after,
            ascending=order == "asc",
            now=time.time(),
        )
        return [self._measured(record) for record in records], has_more

    def delete(self, owner: str, file_id: str) -> None:
        if not self.store.delete_file(file_id, owner, time.time()):
            raise errors.NotFound(f"no file with id {file_id!r}", param="file_id")

    def input_file(self, owner: str, file_id: str) -> file_model.FileRecord:
        """An uploaded file that a batch may read its requests from."""
        record = self._kept(self.store.get_file(file_id, owner), file_id, "input_file_id")
        stored_input = (
            record.kind == file_model.FileKind.STORED
            and record.purpose == file_model.FilePurpose.BATCH
        )
        if not stored_input:
            raise errors.InvalidRequest(
                f"file {file_id!r} has purpose {record.purpose.value!r}; a batch's input file must "
                "be uploaded with purpose 'batch'",
                param="input_file_id",
            )
        return record

    @staticmethod
    def _kept(
        record: file_model.FileRecord | None, file_id: str, param: str
    ) -> file_model.FileRecord:
        """The file, unless it does not exist or has expired (two 404s: the
        second says when it expired)."""
        if record is None:
            raise errors.NotFound(f"no file with id {file_id!r}", param=param)
        if record.expires_at is not None and record.is_expired(time.time()):
            raise retention.file_expired(file_id, record.expires_at)
        return record

    def chunks(self, record: file_model.FileRecord) -> Iterator[bytes]:
        """A stored file's content, a chunk at a time."""
        return self.store.iter_file_chunks(record.id)

    def result_rows(self, record: file_model.FileRecord) -> ResultRows:
        """A result file's rows, read from the request rows page by page."""
        batch = self._batch_of(record)
        states = result_files.states(record.kind)
        with_params = record.kind is file_model.FileKind.OUTPUT and endpoints.renders_from_request(
            batch.endpoint
        )
        return ResultRows(batch, self.store.iter_results(batch.id, states, with_params=with_params))

    def _batch_of(self, record: file_model.FileRecord) -> Batch:
        batch = None if record.batch_id is None else self.store.get_batch(record.batch_id)
        if batch is None:
            raise errors.NotFound(f"the batch of file {record.id!r} no longer exists")
        return batch

    def _measured(self, record: file_model.FileRecord) -> file_model.FileRecord:
        """A result file's size is only known once rendered; it is measured
        the first time the file is described and kept (an ended batch's rows
        never change, and rendering is deterministic)."""
        if (
            record.kind == file_model.FileKind.STORED
            or record.status == file_model.FileStatus.PROCESSED
        ):
            return record
        content = self.result_rows(record)
        size = self.measure(content.batch, content.rows)
        self.store.set_file_bytes(record.id, size)
        return dataclasses.replace(record, bytes=size, status=file_model.FileStatus.PROCESSED)
