"""Anthropic's Message Batches API as a :class:`BatchClient`.

A Message Batch carries its requests in the create call (no file) and no
metadata. After a crash a job's batch is recognised by when it was made and
how big it is: created since the job's ``create_started_at`` less a minute
of clock skew, with ``job.request_count`` requests, and not already
recorded on another job. The driver makes one create at a time per model,
so two of our own jobs cannot match the same window.

How an ended batch's ``request_counts`` become an end status (the driver
requeues any row left unfinished, whatever the status says):

* any ``expired``: EXPIRED (the provider's window ran out);
* else any ``canceled``: CANCELLED (Anthropic cancels only when asked);
* else COMPLETED (succeeded and errored rows alike).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from typing import Any

from batchgate.backends import base, http_client, http_errors
from batchgate.backends.provider_batch import JobTooLarge, ResultLine, UpstreamBatch, codec
from batchgate.domain import upstream_jobs as uj

TOO_LARGE_TYPE = "request_too_large"
# Clock skew allowed between this host and the provider when a batch is
# matched to a job by its creation time.
SKEW_SECONDS = 60.0
_PAGE = 100  # Anthropic's cap for GET /v1/messages/batches
_COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


def _too_large(status: int, body: bytes) -> base.BackendError | None:
    """A create refused as too large: HTTP 413, or an error of type
    ``request_too_large``."""
    too_large = http_errors.error_field(body, "type") == TOO_LARGE_TYPE
    if status == 413 or (400 <= status < 500 and too_large):
        message = http_errors.upstream_message(body, fallback=TOO_LARGE_TYPE)
        return JobTooLarge(f"upstream refused the batch: {message}", reason=TOO_LARGE_TYPE)
    return None


def _timestamp(value: object) -> float:
    """An RFC 3339 time (``2024-08-20T18:37:24.100435Z``) as unix seconds."""
    if not isinstance(value, str):
        return 0.0
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _end_status(status: str, counts: dict[str, int]) -> uj.EndStatus | None:
    if status != "ended":
        return None
    if counts.get("expired"):
        return uj.EndStatus.EXPIRED
    if counts.get("canceled"):
        return uj.EndStatus.CANCELLED
    return uj.EndStatus.COMPLETED


def batch_from(obj: Any) -> UpstreamBatch:
    """A ``message_batch`` object as read. Its ``results_url`` is kept as
    the batch's output file (the one place its results are)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise http_client.unreadable_reply("a message batch", "it has no id")
    raw_counts = obj.get("request_counts")
    counts = {
        key: value
        for key in _COUNT_KEYS
        if isinstance(raw_counts, dict) and isinstance(value := raw_counts.get(key), int)
    }
    status = str(obj.get("processing_status") or "")
    results_url = obj.get("results_url")
    if not isinstance(results_url, str) or len(results_url) > uj.MAX_UPSTREAM_ID_CHARS:
        results_url = None  # too long to record: ``results`` reads the usual path instead
    return UpstreamBatch(
        id=obj["id"],
        status=status,
        end_status=_end_status(status, counts),
        created_at=_timestamp(obj.get("created_at")),
        output_file_id=results_url,
        request_total=sum(counts.values()) if counts else None,
    )


class AnthropicBatchClient:
    kind = "anthropic_batch"
    uploads_file = False
    matches_by_time = True

    def __init__(
        self, http: http_client.PooledClient, *, base_url: str, headers: dict[str, str]
    ) -> None:
        self._http = http
        self._batches = base_url.rstrip("/") + "/v1/messages/batches"
        self._headers = headers

    async def _call(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        refusal: http_client.Refusal | None = None,
    ) -> Any:
        return await http_client.call_json(
            self._http, method, url, self._headers, data=data, refusal=refusal
        )

    async def find_file(self, job: uj.UpstreamJob) -> str | None:
        return None  # a Message Batch has no input file

    async def upload(self, job: uj.UpstreamJob, lines: Sequence[bytes]) -> str:
        raise base.BackendError(
            "the Message Batches API takes its requests in the create call", retryable=False
        )

    async def find_batch(self, job: uj.UpstreamJob, recorded: set[str]) -> UpstreamBatch | None:
        if job.create_started_at is None:
            return None  # no create was ever started: nothing can exist
        since = job.create_started_at - SKEW_SECONDS
        url = f"{self._batches}?limit={_PAGE}"
        async for item in http_client.list_items(self._http, url, self._headers, cursor="after_id"):
            batch = batch_from(item)
            if batch.created_at < since:
                return None  # newest first: the rest are older still
            if batch.request_total == job.request_count and batch.id not in recorded:
                return batch
        return None

    async def create(self, job: uj.UpstreamJob, lines: Sequence[bytes]) -> UpstreamBatch:
        # The lines are JSON objects already: joined, not parsed and dumped again.
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        return batch_from(await self._call("POST", self._batches, data=body, refusal=_too_large))

    async def get(self, batch_id: str) -> UpstreamBatch:
        return batch_from(await self._call("GET", f"{self._batches}/{batch_id}"))

    async def cancel(self, batch_id: str) -> UpstreamBatch:
        return batch_from(await self._call("POST", f"{self._batches}/{batch_id}/cancel"))

    async def results(self, batch: UpstreamBatch) -> AsyncIterator[ResultLine]:
        url = batch.output_file_id or f"{self._batches}/{batch.id}/results"
        async for line in codec.read_results(self._http, url, self._headers):
            yield line

    async def delete_upstream(self, job: uj.UpstreamJob) -> None:
        """Nothing: the Message Batch is kept (see ``BatchClient``)."""

    async def aclose(self) -> None:
        await self._http.aclose()
