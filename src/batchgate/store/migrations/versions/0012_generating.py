"""When the worker handed a claimed request to its backend. A claim leases up
to twice a model's concurrency so the next request is ready when a call ends;
until its call starts, a claimed request is waiting, not generating, and the
dashboard says which (claim resets this column, each attempt sets it anew).

Revision ID: 0012_generating
Revises: 0011_ended_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_generating"
down_revision = "0011_ended_sessions"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("generating_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("generating_at")
