"""Creating, reading and cancelling batches; shared by every dialect."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from batchgate import chat, config
from batchgate.domain import batch as batch_model
from batchgate.domain import errors, ids
from batchgate.domain.states import BatchStatus, Dialect, RequestState
from batchgate.store import port


@dataclasses.dataclass(frozen=True)
class ParsedRequest:
    custom_id: str
    request: chat.ChatRequest


class BatchService:
    def __init__(self, store: port.JobStore, settings: config.Settings) -> None:
        self.store = store
        self.settings = settings

    # -- create ---------------------------------------------------------------
    def check_size(self, count: int) -> None:
        limit = self.settings.limits.max_requests_per_batch
        if count > limit:
            raise errors.PayloadTooLarge(
                f"a batch may hold at most {limit} requests; this one has {count}",
                param="requests",
                code="batch_too_large",
            )

    def create(
        self,
        *,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        requests: Sequence[ParsedRequest],
        metadata: dict[str, str] | None = None,
        input_file_id: str | None = None,
        batch_id: str | None = None,
    ) -> batch_model.Batch:
        self.check_size(len(requests))
        return self.create_streamed(
            owner=owner,
            dialect=dialect,
            endpoint=endpoint,
            total=len(requests),
            requests=requests,
            metadata=metadata,
            input_file_id=input_file_id,
            batch_id=batch_id,
        )

    def create_streamed(
        self,
        *,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        total: int,
        requests: Iterable[ParsedRequest],
        metadata: dict[str, str] | None = None,
        input_file_id: str | None = None,
        batch_id: str | None = None,
    ) -> batch_model.Batch:
        """Create a batch from ``total`` already validated requests, consumed
        once, one at a time (a 50k-request file is never a list in memory)."""
        now = time.time()
        batch = self._record(owner, dialect, endpoint, total, metadata, input_file_id, now)
        if batch_id:
            batch = dataclasses.replace(batch, id=batch_id)
        self.store.create_batch(batch, self._new_requests(requests, total))
        # A batch whose every request was born finished (unknown models) ends now.
        self.store.finalize_batches(now, [batch.id])
        return self.get(owner, batch.id)

    def create_failed(
        self,
        *,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        line_errors: list[dict[str, Any]],
        metadata: dict[str, str] | None = None,
        input_file_id: str | None = None,
    ) -> batch_model.Batch:
        """Store a batch whose input failed validation: status ``failed``, no
        requests, the errors kept for the client to read (OpenAI's behaviour)."""
        now = time.time()
        batch = self._record(owner, dialect, endpoint, 0, metadata, input_file_id, now)
        self.store.fail_batch(batch, line_errors, now)
        return self.get(owner, batch.id)

    def _record(
        self,
        owner: str,
        dialect: Dialect,
        endpoint: str,
        total: int,
        metadata: dict[str, str] | None,
        input_file_id: str | None,
        now: float,
    ) -> batch_model.Batch:
        window = self.settings.completion_window_seconds
        return batch_model.Batch(
            id=ids.new_batch_id(dialect),
            owner=owner,
            dialect=dialect,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window="24h" if window == 86400 else f"{window}s",
            metadata=metadata,
            status=BatchStatus.IN_PROGRESS,
            errors=None,
            total=total,
            created_at=now,
            expires_at=now + window,
            in_progress_at=now,
        )

    def _new_requests(
        self, requests: Iterable[ParsedRequest], total: int
    ) -> Iterator[batch_model.NewRequest]:
        count = 0
        for item in requests:
            count += 1
            yield self._new_request(item)
        if count != total:
            # The source changed under us (an input file deleted mid-read):
            # raising here rolls the whole batch back.
            raise errors.Conflict(
                f"expected {total} requests but read {count}; the input changed while the "
                "batch was being created"
            )

    def _new_request(self, item: ParsedRequest) -> batch_model.NewRequest:
        model = item.request.model
        params = item.request.model_dump_json(exclude_none=True)
        if model not in self.settings.models:
            configured = ", ".join(sorted(self.settings.models)) or "(none)"
            return batch_model.NewRequest(
                custom_id=item.custom_id,
                model=model,
                params=params,
                state=RequestState.ERRORED,
                error={
                    "type": "invalid_request_error",
                    "message": f"model {model!r} is not configured on this server; "
                    f"configured models: {configured}",
                },
            )
        return batch_model.NewRequest(custom_id=item.custom_id, model=model, params=params)

    def create_inline(
        self,
        owner: str,
        requests: Sequence[ParsedRequest],
        *,
        endpoint: str,
        metadata: dict[str, str] | None = None,
    ) -> tuple[batch_model.Batch, port.FileRecord]:
        """A native batch of inline requests, which are kept as its input
        file too; returns the batch and that file."""
        self.check_size(len(requests))
        input_file = self.store_inline_input_file(owner, requests)
        batch = self.create(
            owner=owner,
            dialect=Dialect.NATIVE,
            endpoint=endpoint,
            requests=requests,
            metadata=metadata,
            input_file_id=input_file.id,
        )
        return batch, input_file

    def store_inline_input_file(
        self, owner: str, requests: Sequence[ParsedRequest]
    ) -> port.FileRecord:
        """Keep inline requests as an input file too, so every batch has one
        (``input_file_id``) and it can be downloaded like an uploaded one."""
        record = port.FileRecord(
            id=ids.new_file_id(),
            owner=owner,
            purpose="batch",
            filename="batch.jsonl",
            bytes=0,
            status="processed",
            created_at=time.time(),
        )
        lines = (
            orjson.dumps(
                {"custom_id": item.custom_id, "params": item.request.model_dump(exclude_none=True)}
            )
            + b"\n"
            for item in requests
        )
        return self.store.create_file(record, lines)

    # -- read -----------------------------------------------------------------
    def get(self, owner: str, batch_id: str) -> batch_model.Batch:
        batch = self.store.get_batch(batch_id, owner)
        if batch is None:
            raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
        return batch

    def list(
        self,
        owner: str,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        dialects: Sequence[Dialect] | None = None,
    ) -> tuple[list[batch_model.Batch], bool]:
        if not 1 <= limit <= 1000:
            raise errors.InvalidRequest("limit must be between 1 and 1000", param="limit")
        return self.store.list_batches(
            owner, limit=limit, after=after, before=before, dialects=dialects
        )

    def results(
        self, batch: batch_model.Batch, states: Sequence[RequestState] | None = None
    ) -> Iterator[batch_model.ResultRow]:
        return self.store.iter_results(batch.id, states)

    # -- change ---------------------------------------------------------------
    def cancel(self, owner: str, batch_id: str) -> batch_model.Batch:
        batch = self.store.cancel_batch(batch_id, owner, time.time())
        if batch is None:
            raise errors.NotFound(f"no batch with id {batch_id!r}", param="batch_id")
        return batch

    def delete(self, batch: batch_model.Batch) -> None:
        """Delete an ended batch with its results (Anthropic lets only ended
        batches go). An ended batch never changes again, so checking and then
        deleting cannot race a worker writing into it."""
        if not batch.status.is_ended:
            raise errors.Conflict(
                f"batch {batch.id!r} has not ended yet; cancel it and wait until it has "
                "ended before deleting it",
                param="batch_id",
            )
        if not self.store.delete_batch(batch.id, batch.owner, time.time()):
            raise errors.NotFound(f"no batch with id {batch.id!r}", param="batch_id")
