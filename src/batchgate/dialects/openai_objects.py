"""OpenAI-shaped objects shared by the native and OpenAI dialects: the batch
object and the file object."""

from __future__ import annotations

from typing import Any

from batchgate.domain.batch import Batch
from batchgate.domain.states import RequestState
from batchgate.store.port import FileRecord


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def batch_object(
    batch: Batch, *, output_file_id: str | None = None, error_file_id: str | None = None
) -> dict[str, Any]:
    tally = batch.tally
    errors = None
    if batch.errors:
        errors = {"object": "list", "data": batch.errors}
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status.value,
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
        "created_at": _ts(batch.created_at),
        "in_progress_at": _ts(batch.in_progress_at),
        "expires_at": _ts(batch.expires_at),
        "finalizing_at": _ts(batch.finalizing_at),
        "completed_at": _ts(batch.completed_at),
        "failed_at": _ts(batch.failed_at),
        "expired_at": _ts(batch.expired_at),
        "cancelling_at": _ts(batch.cancelling_at),
        "cancelled_at": _ts(batch.cancelled_at),
        "request_counts": {
            "total": batch.total,
            "completed": tally.count(RequestState.SUCCEEDED),
            "failed": tally.failed,
        },
        "metadata": batch.metadata,
        "usage": tally.usage(),
        "cost": round(tally.cost, 10),
    }


def file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": int(record.created_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "status": record.status,
        "expires_at": None,
        "status_details": None,
    }
