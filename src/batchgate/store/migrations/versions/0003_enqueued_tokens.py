"""Each request's input tokens, counted at submit: a key's enqueued tokens are
the sum over its queued and running requests (derived from request states,
so nothing has to be released by hand when a request ends).

Revision ID: 0003_enqueued_tokens
Revises: 0002_key_scopes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_enqueued_tokens"
down_revision = "0002_key_scopes"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("enqueued_tokens", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("enqueued_tokens")
