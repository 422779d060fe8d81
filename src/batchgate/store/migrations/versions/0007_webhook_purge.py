"""Webhook deliveries by batch: the retention purge drops a batch's settled
deliveries when it purges the batch's results.

Revision ID: 0007_webhook_purge
Revises: 0006_retention
"""

from __future__ import annotations

from alembic import op

revision = "0007_webhook_purge"
down_revision = "0006_retention"


def upgrade() -> None:
    op.create_index("ix_webhook_deliveries_batch", "webhook_deliveries", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_batch", "webhook_deliveries")
