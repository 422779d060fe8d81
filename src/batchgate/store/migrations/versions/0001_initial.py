"""Initial schema: keys, files, batches, requests.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

from alembic import op

from batchgate.store import tables

revision = "0001_initial"
down_revision = None


def upgrade() -> None:
    # The first revision creates the tables exactly as tables.py defines them
    # today; later revisions must spell out their changes with op.* calls.
    tables.metadata.create_all(op.get_bind())


def downgrade() -> None:
    tables.metadata.drop_all(op.get_bind())
