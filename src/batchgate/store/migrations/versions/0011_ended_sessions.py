"""Dashboard sessions ended by logging out. A session is a signed token (no
session table: any API process can verify one); logging out records the
session's id here until the token would have expired anyway, so a copied
cookie stops working at once on every process.

Revision ID: 0011_ended_sessions
Revises: 0010_webhook_event_data
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_ended_sessions"
down_revision = "0010_webhook_event_data"


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ended_sessions_expires", "ended_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_ended_sessions_expires", table_name="ended_sessions")
    op.drop_table("ended_sessions")
