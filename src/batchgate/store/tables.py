"""Table definitions for queries (SQLAlchemy Core).

The schema itself is created by the versioned migrations in ``migrations/``;
these definitions must match the newest migration (a contract test checks it).
Times are unix seconds as floats; JSON is stored as text (portable, and
orjson is faster than either database's JSON type round trip).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires_at", sa.Float),
    # Per-key quota overrides (NULL: the [quotas] default); tokens as JSON.
    sa.Column("max_enqueued_tokens", sa.Text),
    sa.Column("max_active_batches", sa.Integer),
    sa.Column("max_requests_per_batch", sa.Integer),
    sa.Column("max_file_bytes", sa.BigInteger),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("batch_id", sa.String(64)),
    sa.Column("kind", sa.String(16), nullable=False, server_default="stored"),
    sa.Column("deleted_at", sa.Float),
    sa.Column("expires_at", sa.Float),
    sa.Column("purged_at", sa.Float),
)

file_chunks = sa.Table(
    "file_chunks",
    metadata,
    sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("dialect", sa.String(16), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("input_file_id", sa.String(64)),
    sa.Column("completion_window", sa.String(16), nullable=False),
    sa.Column("metadata", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("errors", sa.Text),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("in_progress_at", sa.Float),
    sa.Column("finalizing_at", sa.Float),
    sa.Column("completed_at", sa.Float),
    sa.Column("failed_at", sa.Float),
    sa.Column("expired_at", sa.Float),
    sa.Column("cancelling_at", sa.Float),
    sa.Column("cancelled_at", sa.Float),
    sa.Column("deleted_at", sa.Float),
    sa.Column("last_claimed_at", sa.Float, nullable=False, server_default="0"),
    # Retention (migration 0006): seconds results are kept after the end
    # (NULL: forever), when they expire, when their rows were purged, and
    # the request tally saved before the purge.
    sa.Column("results_ttl", sa.Integer),
    sa.Column("results_expire_at", sa.Float),
    sa.Column("purged_at", sa.Float),
    sa.Column("frozen_tally", sa.Text),
    sa.Column("model", sa.String(200)),
)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("custom_id", sa.String(256), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", sa.Float, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost", sa.Float, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Float),
    # Set when the backend call starts (0012): claimed but not yet generating
    # until then.
    sa.Column("generating_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("enqueued_tokens", sa.Integer, nullable=False, server_default="0"),
    # A provider-batch model's rows (0013): the upstream job that holds or
    # last held the row (kept after it ends, so a batch lists its jobs), and
    # the path that serves it (domain/upstream_jobs.py Path; NULL: a job's).
    sa.Column("upstream_job_id", sa.String(64)),
    sa.Column("route", sa.String(16)),
    sa.UniqueConstraint("batch_id", "custom_id", name="uq_requests_batch_custom_id"),
    sa.UniqueConstraint("batch_id", "idx", name="uq_requests_batch_idx"),
    sa.Index("ix_requests_claim", "batch_id", "model", "state", "id"),
    sa.Index("ix_requests_lease", "state", "lease_expires_at"),
    sa.Index("ix_requests_owner", "lease_owner"),
    # Operator figures over a recent window read only what ended in it (0009).
    sa.Index("ix_requests_finished", "finished_at"),
    sa.Index("ix_requests_upstream_job", "upstream_job_id"),
)

# Upstream jobs (0013): fields as domain/upstream_jobs.py UpstreamJob. Each
# is leased to one worker at a time (lease_owner) while driven through the
# provider; its rows are leased to the job (requests.lease_owner = its id).
upstream_jobs = sa.Table(
    "upstream_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("request_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("deadline", sa.Float),
    sa.Column("upstream_file_id", sa.String(256)),
    sa.Column("upstream_batch_id", sa.String(256)),
    sa.Column("create_started_at", sa.Float),
    sa.Column("submitted_at", sa.Float),
    sa.Column("upstream_status", sa.String(32)),
    sa.Column("end_status", sa.String(16)),
    sa.Column("ended_at", sa.Float),
    sa.Column("output_file_id", sa.String(256)),
    sa.Column("error_file_id", sa.String(256)),
    sa.Column("downloaded_at", sa.Float),
    sa.Column("cancel_requested_at", sa.Float),
    sa.Column("next_poll_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_upstream_jobs_due", "state", "next_poll_at"),
    sa.Index("ix_upstream_jobs_model", "model", "state"),
)

# One row per worker process: its heartbeat, and the cumulative counters it
# keeps in memory (JSON; see metrics/worker.py), summed by /metrics.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("models", sa.Text, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("stopped_at", sa.Float),
    sa.Column("stats", sa.Text),
    sa.Index("ix_workers_last_seen", "last_seen_at"),
)

# Dashboard sessions ended by logging out, kept until their token would have
# expired anyway (0011): sessions are signed tokens, not rows.
ended_sessions = sa.Table(
    "ended_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_ended_sessions_expires", "expires_at"),
)

sa.Index("ix_batches_owner_created", batches.c.owner, batches.c.created_at)
sa.Index("ix_batches_status", batches.c.status)
sa.Index("ix_api_keys_prefix", api_keys.c.prefix)
sa.Index("ix_files_owner_created", files.c.owner, files.c.created_at)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", sa.Text, nullable=False),  # JSON list
    sa.Column("progress_every_percent", sa.Integer),
    sa.Column("description", sa.Text),
    # Kept as given: signing needs the secret itself, not a hash of it.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float),
    sa.Index("ix_webhook_endpoints_owner", "owner"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("endpoint_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=False),
    # The event type, or "batch.progress:40" for a progress step.
    sa.Column("dedupe_key", sa.String(64), nullable=False),
    # The event as data (domain/webhooks.py Event.data), rendered when sent.
    sa.Column("event_data", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("last_attempt_at", sa.Float),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.Float),
    sa.UniqueConstraint(
        "endpoint_id", "batch_id", "dedupe_key", name="uq_webhook_deliveries_event"
    ),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    sa.Index("ix_webhook_deliveries_batch", "batch_id"),
)

# The retention sweep's way in: what is due and not yet purged.
sa.Index("ix_batches_purge", batches.c.purged_at, batches.c.results_expire_at)
sa.Index("ix_files_purge", files.c.purged_at, files.c.expires_at)
