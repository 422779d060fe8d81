"""The Anthropic dialect: Message Batches wire JSON <-> domain.

Pure: parsing a create body into canonical chat requests, and rendering the
``message_batch`` object, list page and delete confirmation. Result lines are
:func:`batchgate.dialects.message_results.result_line`, shared with the native
dialect. Parsing is all-or-nothing, like the native dialect: the first problem
is reported with its path (``requests[2].params.max_tokens``) and nothing is
stored.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from batchgate.dialects import native, openai_objects, paths
from batchgate.domain.batch import Batch
from batchgate.domain.states import BatchStatus, RequestState

ENDPOINT = "/v1/messages"

# Anthropic's own rule for custom_id; ids outside it would be rejected by the
# real API, so code tested here must not come to rely on them.
CUSTOM_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class InlineRequest(native.InlineRequest):
    custom_id: str = Field(pattern=CUSTOM_ID_PATTERN)


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    requests: list[InlineRequest] = Field(min_length=1)


def parse_create(body: bytes) -> list[InlineRequest]:
    """Validate a create body; raise InvalidRequest naming the bad path."""
    parsed = paths.parse_body(CreateBody, body)
    native.check_inline_requests(parsed.requests)
    return parsed.requests


_TERMINAL_COUNTS = {
    "succeeded": RequestState.SUCCEEDED,
    "errored": RequestState.ERRORED,
    "canceled": RequestState.CANCELED,
    "expired": RequestState.EXPIRED,
}


def processing_status(status: BatchStatus) -> str:
    """The domain keeps OpenAI's finer statuses; Anthropic only tells running,
    being cancelled, and done (whatever the reason) apart."""
    if status.is_ended:
        return "ended"
    return "canceling" if status is BatchStatus.CANCELLING else "in_progress"


def rfc3339(value: float | None) -> str | None:
    """Unix seconds as an RFC 3339 UTC timestamp (``2024-08-20T18:37:24.100435Z``)."""
    if value is None:
        return None
    moment = datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def request_counts(batch: Batch) -> dict[str, int]:
    """Counts per outcome; ``processing`` is every request not yet finished
    (queued or running). It is computed as the remainder of ``batch.total`` so
    the counts sum to the number of requests, which Anthropic promises."""
    counts = {name: batch.tally.count(state) for name, state in _TERMINAL_COUNTS.items()}
    return {"processing": max(batch.total - sum(counts.values()), 0), **counts}


def render_batch(batch: Batch, *, results_url: str, now: float | None = None) -> dict[str, Any]:
    """The ``message_batch`` object. ``results_url`` is shown only once the
    batch has ended: the SDK reads its presence as "results are ready".
    ``archived_at`` is when its results expired, once they have (as of ``now``)."""
    status = processing_status(batch.status)
    archived = batch.results_expired(time.time() if now is None else now)
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": request_counts(batch),
        "ended_at": rfc3339(batch.ended_at),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.expires_at),
        "cancel_initiated_at": rfc3339(batch.cancelling_at),
        "archived_at": rfc3339(batch.results_expire_at) if archived else None,
        "results_url": results_url if status == "ended" else None,
    }


def render_page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return openai_objects.cursor_page(items, has_more)


def render_deleted(batch_id: str) -> dict[str, str]:
    return {"id": batch_id, "type": "message_batch_deleted"}
