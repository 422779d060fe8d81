"""What keeps every stored string within its column: one entry per String or
Text column of ``store/tables.py``, naming the longest value that can reach it
and the check that ensures so.

A value past a ``VARCHAR(n)`` is an error on PostgreSQL (SQLite keeps it),
so a string a client chose must be refused at the edge, in its dialect's
envelope, before it gets that far. A contract test walks the schema against
this table: a new column without an entry, or an entry longer than its
column, fails it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

from batchgate.dialects import input_limits, openai
from batchgate.domain import files as file_model
from batchgate.domain import ids, keys, states, workers
from batchgate.domain import upstream_jobs as uj
from batchgate.domain import webhooks as wh


@dataclasses.dataclass(frozen=True)
class Bound:
    # The longest value that can be stored; None only for a Text column
    # whose size is bounded by a byte limit instead (``how`` says which).
    max_chars: int | None
    how: str


def _longest(values: Iterable[str]) -> int:
    return max(len(value) for value in values)


def _enum(kind: type[enum.StrEnum]) -> Bound:
    return Bound(_longest(kind), f"one of {kind.__name__}")


def _generated(*examples: str) -> Bound:
    return Bound(_longest(examples), "made by the server")


_BATCH_ID = _generated(*(ids.new_batch_id(dialect) for dialect in states.Dialect))
_FILE_ID = _generated(ids.new_file_id())
_KEY_ID = _generated(ids.new_key_id())
_WORKER_ID = _generated(ids.new_worker_id(), workers.RETIRED_ID)
# A request's lease is held by a worker or by the upstream job holding it.
_LEASE_OWNER = _generated(ids.new_worker_id(), workers.RETIRED_ID, ids.new_upstream_job_id())
_JOB_ID = _generated(ids.new_upstream_job_id())
# What a provider returns; UpstreamJob/JobUpdate refuse a longer one.
_UPSTREAM_ID = Bound(uj.MAX_UPSTREAM_ID_CHARS, "refused by domain/upstream_jobs.py")
_MODEL = Bound(input_limits.MAX_MODEL_CHARS, "input_limits.check_request / model_is_storable")
_JSON = "JSON the server renders from bounded values"

COLUMN_BOUNDS: dict[str, Bound] = {
    "api_keys.id": _KEY_ID,
    "api_keys.name": Bound(keys.MAX_NAME_CHARS, "the key create body and the CLI"),
    "api_keys.key_hash": _generated(keys.hash_key("any")),
    "api_keys.prefix": Bound(keys.PREFIX_CHARS, "keys.display_prefix"),
    "api_keys.max_enqueued_tokens": Bound(None, f"{_JSON} (configured models)"),
    # A logged-out session's id: the SHA-256 of its nonce (services/sessions.py).
    "ended_sessions.id": _generated(keys.hash_key("any")),
    "files.id": _FILE_ID,
    "files.owner": _KEY_ID,
    "files.purpose": _enum(file_model.FilePurpose),
    "files.filename": Bound(input_limits.MAX_FILENAME_CHARS, "api/uploads cuts it"),
    "files.status": _enum(file_model.FileStatus),
    "files.batch_id": _BATCH_ID,
    "files.kind": _enum(file_model.FileKind),
    "file_chunks.file_id": _FILE_ID,
    "batches.id": _BATCH_ID,
    "batches.owner": _KEY_ID,
    "batches.dialect": _enum(states.Dialect),
    "batches.endpoint": Bound(_longest(openai.SUPPORTED_ENDPOINTS), "a supported endpoint"),
    "batches.input_file_id": _FILE_ID,
    "batches.completion_window": Bound(_longest(openai.COMPLETION_WINDOWS), "a supported window"),
    "batches.metadata": Bound(
        openai.MAX_METADATA_PAIRS * (openai.MAX_METADATA_KEY + openai.MAX_METADATA_VALUE + 6) + 2,
        "openai.check_metadata, as JSON",
    ),
    "batches.status": _enum(states.BatchStatus),
    "batches.errors": Bound(None, f"{_JSON}: at most MAX_KEPT_LINE_ERRORS line errors"),
    "batches.frozen_tally": Bound(None, _JSON),
    "batches.model": _MODEL,
    "requests.batch_id": _BATCH_ID,
    "requests.custom_id": Bound(input_limits.MAX_CUSTOM_ID_CHARS, "input_limits.check_custom_id"),
    "requests.model": _MODEL,
    "requests.params": Bound(None, "[limits] max_body_bytes / the input file's size"),
    "requests.state": _enum(states.RequestState),
    "requests.lease_owner": _LEASE_OWNER,
    "requests.upstream_job_id": _JOB_ID,
    "requests.route": _enum(uj.Path),
    "requests.result": Bound(None, "the backend's answer, within its max_tokens"),
    "requests.error": Bound(None, _JSON),
    "workers.id": _WORKER_ID,
    # HOST_NAME_MAX is 64 on Linux; DNS names stop at 253.
    "workers.host": Bound(253, "socket.gethostname()"),
    "workers.models": Bound(None, f"{_JSON} (configured models)"),
    "workers.stats": Bound(None, _JSON),
    "webhook_endpoints.id": _generated(ids.new_webhook_endpoint_id()),
    "webhook_endpoints.owner": _KEY_ID,
    "webhook_endpoints.url": Bound(input_limits.MAX_WEBHOOK_URL_CHARS, "dialects.webhooks"),
    "webhook_endpoints.event_types": Bound(None, f"{_JSON}: a list of EventType"),
    "webhook_endpoints.description": Bound(
        input_limits.MAX_WEBHOOK_DESCRIPTION_CHARS, "dialects.webhooks"
    ),
    "webhook_endpoints.secret": _generated(ids.new_webhook_secret()),
    "webhook_deliveries.id": _generated(ids.new_webhook_message_id()),
    "webhook_deliveries.endpoint_id": _generated(ids.new_webhook_endpoint_id()),
    "webhook_deliveries.event_id": _generated(ids.new_event_id()),
    "webhook_deliveries.event_type": _enum(wh.EventType),
    "webhook_deliveries.batch_id": _BATCH_ID,
    "webhook_deliveries.dedupe_key": _generated(f"{wh.EventType.BATCH_PROGRESS.value}:99"),
    "webhook_deliveries.event_data": Bound(None, _JSON),
    "webhook_deliveries.status": _enum(wh.DeliveryStatus),
    "webhook_deliveries.lease_owner": _WORKER_ID,
    "webhook_deliveries.last_error": Bound(wh.MAX_ERROR_CHARS, "worker.webhooks cuts it"),
    "upstream_jobs.id": _JOB_ID,
    "upstream_jobs.model": Bound(input_limits.MAX_MODEL_CHARS, "a configured model its rows name"),
    "upstream_jobs.kind": Bound(uj.MAX_KIND_CHARS, "a backend kind; UpstreamJob refuses longer"),
    "upstream_jobs.endpoint": Bound(
        uj.MAX_ENDPOINT_CHARS, "the model entry's endpoint, refused if longer by UpstreamJob"
    ),
    "upstream_jobs.state": _enum(uj.JobState),
    "upstream_jobs.upstream_file_id": _UPSTREAM_ID,
    "upstream_jobs.upstream_batch_id": _UPSTREAM_ID,
    "upstream_jobs.upstream_status": Bound(
        uj.MAX_UPSTREAM_STATUS_CHARS, "the provider's word, refused if longer by JobUpdate"
    ),
    "upstream_jobs.end_status": _enum(uj.EndStatus),
    "upstream_jobs.output_file_id": _UPSTREAM_ID,
    "upstream_jobs.error_file_id": _UPSTREAM_ID,
    "upstream_jobs.lease_owner": _WORKER_ID,
    "upstream_jobs.last_error": Bound(None, "the driver's message for the job's last failure"),
}
