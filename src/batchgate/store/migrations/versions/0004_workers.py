"""Worker heartbeats: one row per worker process, with its cumulative counters.

Readiness asks whether any worker was seen within the lease, and ``/metrics``
sums the counters every worker process (on any host) last wrote here, so the
API process can report upstream latency, retries and attempts it never saw.

Revision ID: 0004_workers
Revises: 0003_enqueued_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_workers"
down_revision = "0003_enqueued_tokens"


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float),
        sa.Column("stats", sa.Text),
    )
    op.create_index("ix_workers_last_seen", "workers", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_workers_last_seen", table_name="workers")
    op.drop_table("workers")
