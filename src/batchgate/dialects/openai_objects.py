"""OpenAI-shaped objects shared by the native and OpenAI dialects: the batch
object, the file object, and the list page every list route answers with."""

from __future__ import annotations

from typing import Any

from batchgate.domain import files as file_model
from batchgate.domain.batch import Batch
from batchgate.domain.states import RequestState


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def batch_object(
    batch: Batch, *, output_file_id: str | None = None, error_file_id: str | None = None
) -> dict[str, Any]:
    tally = batch.tally
    errors = None
    if batch.errors:
        data = [error.to_json() for error in batch.errors]
        # The first errors only past MAX_KEPT_LINE_ERRORS; ``total`` counts
        # all, and GET /v1/batches/{id}/errors lists them (extensions).
        total = max(batch.error_count, len(data))
        errors = {"object": "list", "data": data, "has_more": total > len(data), "total": total}
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
        "model": batch.model,
        "usage": tally.usage(),
        "cost": round(tally.cost, 10),
    }


def file_object(record: file_model.FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": int(record.created_at),
        "filename": record.filename,
        "purpose": record.purpose.value,
        "status": record.status.value,
        "expires_at": _ts(record.expires_at),
        "status_details": None,
    }


def cursor_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A page of a cursor-paginated list, as OpenAI and Anthropic both shape
    it: ``{data, first_id, last_id, has_more}`` (the cursors are item ids)."""
    return {
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's list shape: ``{object: "list", data, first_id, last_id, has_more}``."""
    return {"object": "list", **cursor_page(data, has_more)}
