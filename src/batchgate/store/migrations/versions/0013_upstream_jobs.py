"""Upstream jobs (issue 19): a provider-batch model's queued rows, whichever
tenant's batch they come from, packed into jobs that each become one batch at
the provider (domain/upstream_jobs.py). A job is leased to one worker at a
time while it is driven through the provider, and its rows are leased to the
job. Requests gain the job that holds (or last held) them, so a batch's page
lists its jobs, and the path that served them (``route``: batch|realtime).

Revision ID: 0013_upstream_jobs
Revises: 0012_generating
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_upstream_jobs"
down_revision = "0012_generating"


def upgrade() -> None:
    op.create_table(
        "upstream_jobs",
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
    )
    op.create_index("ix_upstream_jobs_due", "upstream_jobs", ["state", "next_poll_at"])
    op.create_index("ix_upstream_jobs_model", "upstream_jobs", ["model", "state"])
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("upstream_job_id", sa.String(64)))
        batch.add_column(sa.Column("route", sa.String(16)))
    op.create_index("ix_requests_upstream_job", "requests", ["upstream_job_id"])


def downgrade() -> None:
    op.drop_index("ix_requests_upstream_job", "requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("route")
        batch.drop_column("upstream_job_id")
    op.drop_index("ix_upstream_jobs_model", table_name="upstream_jobs")
    op.drop_index("ix_upstream_jobs_due", table_name="upstream_jobs")
    op.drop_table("upstream_jobs")
