"""Creating, reading and cancelling batches; shared by every dialect."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence

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
        now = time.time()
        window = self.settings.completion_window_seconds
        batch = batch_model.Batch(
            id=batch_id or ids.new_batch_id(dialect),
            owner=owner,
            dialect=dialect,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window="24h" if window == 86400 else f"{window}s",
            metadata=metadata,
            status=BatchStatus.IN_PROGRESS,
            errors=None,
            total=len(requests),
            created_at=now,
            expires_at=now + window,
            in_progress_at=now,
        )
        self.store.create_batch(batch, (self._new_request(item) for item in requests))
        # A batch whose every request was born finished (unknown models) ends now.
        self.store.finalize_batches(now, [batch.id])
        return self.get(owner, batch.id)

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
