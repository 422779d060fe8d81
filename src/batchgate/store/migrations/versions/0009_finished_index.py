"""Requests by end time: the operator figures over a recent window
(throughput, error rate, tokens and cost per model on /ui/models) read only
the requests that ended in that window, instead of every stored row.

Revision ID: 0009_finished_index
Revises: 0008_usage_details
"""

from __future__ import annotations

from alembic import op

revision = "0009_finished_index"
down_revision = "0008_usage_details"


def upgrade() -> None:
    op.create_index("ix_requests_finished", "requests", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_requests_finished", "requests")
