"""Usage details as OpenAI reports them, and a batch's model.

``requests.cached_tokens`` (of the input tokens, how many were read from a
prompt cache) and ``requests.reasoning_tokens`` (of the output tokens, how
many were reasoning) sum into the batch's ``usage`` details;
``batches.model`` is the model its requests name (null when they name
several, or for batches made before this revision).

Revision ID: 0008_usage_details
Revises: 0007_webhook_purge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_usage_details"
down_revision = "0007_webhook_purge"


def upgrade() -> None:
    with op.batch_alter_table("requests") as table:
        table.add_column(sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"))
        table.add_column(
            sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0")
        )
    with op.batch_alter_table("batches") as table:
        table.add_column(sa.Column("model", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.drop_column("model")
    with op.batch_alter_table("requests") as table:
        table.drop_column("reasoning_tokens")
        table.drop_column("cached_tokens")
