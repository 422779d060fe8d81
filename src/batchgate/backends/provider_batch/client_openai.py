"""OpenAI's Files + Batch API as a :class:`BatchClient` (OpenAI itself,
Azure-style deployments, another batchgate).

A job's input file is named ``uj.job_marker(job.id)`` and its batch carries
``metadata = {"batchgate_job": job.id}``: after a crash the driver finds
them by listing files and batches (newest first, back to an hour before the
job was made) before it creates anything again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import orjson

from batchgate.backends import base, http_client, http_errors
from batchgate.backends.provider_batch import JobTooLarge, ResultLine, UpstreamBatch, codec
from batchgate.domain import upstream_jobs as uj

METADATA_KEY = "batchgate_job"
TOO_LARGE_CODE = "token_limit_exceeded"
# How far before a job's creation its upstream objects are looked for:
# clocks differ, and a file or batch is made after its job, never before.
LOOKBACK_SECONDS = 3600.0
_FILES_PAGE = 1000
_BATCHES_PAGE = 100  # OpenAI's cap for GET /batches

_END_STATUSES = {
    "completed": uj.EndStatus.COMPLETED,
    "failed": uj.EndStatus.FAILED,
    "expired": uj.EndStatus.EXPIRED,
    "cancelled": uj.EndStatus.CANCELLED,
}


def _too_large(status: int, body: bytes) -> base.BackendError | None:
    """A create refused with ``token_limit_exceeded`` (the job's tokens
    exceed the organisation's enqueued-token limit)."""
    if 400 <= status < 500 and http_errors.error_field(body, "code") == TOO_LARGE_CODE:
        message = http_errors.upstream_message(body, fallback=TOO_LARGE_CODE)
        return JobTooLarge(f"upstream refused the batch: {message}", reason=TOO_LARGE_CODE)
    return None


def batch_from(obj: Any) -> UpstreamBatch:
    """An OpenAI batch object as read."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise http_client.unreadable_reply("a batch object", "it has no id")
    status = str(obj.get("status") or "")
    errors = obj.get("errors") or {}
    data = errors.get("data") if isinstance(errors, dict) else None
    items = [item for item in data or [] if isinstance(item, dict)]
    codes = {item.get("code") for item in items}
    failed = status == "failed"
    metadata = obj.get("metadata") or {}
    counts = obj.get("request_counts") or {}
    job_id = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    total = counts.get("total") if isinstance(counts, dict) else None
    return UpstreamBatch(
        id=obj["id"],
        status=status,
        end_status=_END_STATUSES.get(status),
        created_at=float(obj.get("created_at") or 0),
        output_file_id=obj.get("output_file_id"),
        error_file_id=obj.get("error_file_id"),
        request_total=total if isinstance(total, int) else None,
        refusal=TOO_LARGE_CODE if failed and TOO_LARGE_CODE in codes else None,
        error="; ".join(str(item.get("message") or item.get("code")) for item in items[:5])
        if failed and items
        else None,
        job_id=job_id if isinstance(job_id, str) else None,
    )


class OpenAIBatchClient:
    kind = "openai_batch"
    uploads_file = True
    matches_by_time = False

    def __init__(
        self,
        http: http_client.PooledClient,
        *,
        base_url: str,
        endpoint: str,
        headers: dict[str, str],
        delete_files: bool = True,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._endpoint = endpoint
        self._headers = headers
        self._delete_files = delete_files

    async def _call(
        self,
        method: str,
        path: str,
        *,
        data: bytes | aiohttp.FormData | None = None,
        refusal: http_client.Refusal | None = None,
    ) -> Any:
        return await http_client.call_json(
            self._http, method, self._base + path, self._headers, data=data, refusal=refusal
        )

    async def find_file(self, job: uj.UpstreamJob) -> str | None:
        name = uj.job_marker(job.id)
        found = await self._newest_first(
            f"/files?purpose=batch&limit={_FILES_PAGE}",
            job,
            lambda item: item.get("filename") == name and item.get("status") != "error",
        )
        return None if found is None else str(found["id"])

    async def upload(self, job: uj.UpstreamJob, lines: Sequence[bytes]) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        # One copy of the lines, joined: a multipart part needs its bytes.
        content = b"\n".join(lines) + b"\n"
        form.add_field(
            "file", content, filename=uj.job_marker(job.id), content_type="application/jsonl"
        )
        reply = await self._call("POST", "/files", data=form)
        if not isinstance(reply, dict) or not isinstance(reply.get("id"), str):
            raise http_client.unreadable_reply("a file object", "it has no id")
        return str(reply["id"])

    async def find_batch(self, job: uj.UpstreamJob, recorded: set[str]) -> UpstreamBatch | None:
        def ours(item: dict[str, Any]) -> bool:
            metadata = item.get("metadata")
            return isinstance(metadata, dict) and metadata.get(METADATA_KEY) == job.id

        found = await self._newest_first(f"/batches?limit={_BATCHES_PAGE}", job, ours)
        return None if found is None else batch_from(found)

    async def _newest_first(
        self, path: str, job: uj.UpstreamJob, match: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """The first item of a newest-first list that ``match``es, paging on
        until the items are older than the job by more than
        :data:`LOOKBACK_SECONDS`."""
        oldest = job.created_at - LOOKBACK_SECONDS
        url = self._base + path
        async for item in http_client.list_items(self._http, url, self._headers, cursor="after"):
            if not isinstance(item, dict):
                continue
            created = item.get("created_at")
            if isinstance(created, int | float) and created < oldest:
                return None
            if match(item):
                return item
        return None

    async def create(self, job: uj.UpstreamJob, lines: Sequence[bytes]) -> UpstreamBatch:
        if job.upstream_file_id is None:
            raise base.BackendError(f"job {job.id} has no uploaded file", retryable=False)
        body = {
            "input_file_id": job.upstream_file_id,
            "endpoint": self._endpoint,
            "completion_window": "24h",
            "metadata": {METADATA_KEY: job.id},
        }
        reply = await self._call("POST", "/batches", data=orjson.dumps(body), refusal=_too_large)
        return batch_from(reply)

    async def get(self, batch_id: str) -> UpstreamBatch:
        return batch_from(await self._call("GET", f"/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> UpstreamBatch:
        return batch_from(await self._call("POST", f"/batches/{batch_id}/cancel"))

    async def results(self, batch: UpstreamBatch) -> AsyncIterator[ResultLine]:
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            url = f"{self._base}/files/{file_id}/content"
            async for line in codec.read_results(self._http, url, self._headers):
                yield line

    async def delete_upstream(self, job: uj.UpstreamJob) -> None:
        if not self._delete_files:
            return
        failed: list[tuple[str, base.BackendError]] = []
        for file_id in (job.upstream_file_id, job.output_file_id, job.error_file_id):
            if file_id is None:
                continue
            try:
                await self._call("DELETE", f"/files/{file_id}")
            except base.BackendError as exc:
                if exc.status_code != 404:  # a 404: deleted already
                    failed.append((file_id, exc))
        if failed:
            raise base.BackendError(
                "could not delete " + "; ".join(f"file {f}: {exc}" for f, exc in failed),
                retryable=any(exc.retryable for _, exc in failed),
            )

    async def aclose(self) -> None:
        await self._http.aclose()
