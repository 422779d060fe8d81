"""Key scopes, expiry and per-key quotas.

``admin`` keys manage keys over the API (and read metrics, see every batch);
ordinary keys see only their own objects. Before this revision every key
could do everything an ordinary key can, and nobody could manage keys over the
API; the oldest key (the one the first start created, or the operator's
first) becomes the admin, so an upgraded deployment keeps one way in without
granting every tenant key management.

The quota columns override ``[quotas]`` in the config for one key (NULL: the
configured default). ``max_enqueued_tokens`` is a JSON object model -> tokens.

Revision ID: 0002_key_scopes
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_key_scopes"
down_revision = "0001_initial"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("expires_at", sa.Float))
        batch.add_column(sa.Column("max_enqueued_tokens", sa.Text))
        batch.add_column(sa.Column("max_active_batches", sa.Integer))
        batch.add_column(sa.Column("max_requests_per_batch", sa.Integer))
        batch.add_column(sa.Column("max_file_bytes", sa.BigInteger))
    keys = sa.table(
        "api_keys",
        sa.column("id", sa.String),
        sa.column("created_at", sa.Float),
        sa.column("admin", sa.Boolean),
    )
    oldest = sa.select(keys.c.id).order_by(keys.c.created_at, keys.c.id).limit(1).scalar_subquery()
    op.execute(keys.update().where(keys.c.id == oldest).values(admin=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for column in (
            "max_file_bytes",
            "max_requests_per_batch",
            "max_active_batches",
            "max_enqueued_tokens",
            "expires_at",
            "admin",
        ):
            batch.drop_column(column)
