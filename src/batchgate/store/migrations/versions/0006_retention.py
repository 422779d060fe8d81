"""Retention: results and files expire, and a sweep purges them in chunks.

batches: ``results_ttl`` (seconds an ended batch's results are kept: the
batch's ``output_expires_after`` or the configured default, fixed when the
batch is created; NULL keeps them forever), ``results_expire_at`` (set when
the batch ends), ``purged_at`` (its request rows are gone) and
``frozen_tally`` (the counts and usage of its requests, saved before they are
deleted, so the batch object still reports them).

files: ``expires_at`` (OpenAI's; an upload's ``expires_after`` or the default,
a result file's from its batch) and ``purged_at`` (content gone).

Rows from before this revision get the default 30 days, so an upgraded
database stops growing too.

Revision ID: 0006_retention
Revises: 0005_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_retention"
down_revision = "0005_webhooks"

_DEFAULT_TTL = 30 * 86400


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("results_ttl", sa.Integer))
        batch.add_column(sa.Column("results_expire_at", sa.Float))
        batch.add_column(sa.Column("purged_at", sa.Float))
        batch.add_column(sa.Column("frozen_tally", sa.Text))
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("expires_at", sa.Float))
        batch.add_column(sa.Column("purged_at", sa.Float))
    op.create_index("ix_batches_purge", "batches", ["purged_at", "results_expire_at"])
    op.create_index("ix_files_purge", "files", ["purged_at", "expires_at"])

    batches = sa.table(
        "batches",
        *(
            sa.column(name, sa.Float)
            for name in (
                "completed_at",
                "cancelled_at",
                "expired_at",
                "failed_at",
                "results_expire_at",
            )
        ),
        sa.column("results_ttl", sa.Integer),
    )
    ended_at = sa.func.coalesce(
        batches.c.completed_at, batches.c.cancelled_at, batches.c.expired_at, batches.c.failed_at
    )
    op.execute(batches.update().values(results_ttl=_DEFAULT_TTL))
    op.execute(
        batches.update()
        .where(ended_at.is_not(None))
        .values(results_expire_at=ended_at + _DEFAULT_TTL)
    )
    files = sa.table("files", sa.column("created_at", sa.Float), sa.column("expires_at", sa.Float))
    op.execute(files.update().values(expires_at=files.c.created_at + _DEFAULT_TTL))


def downgrade() -> None:
    op.drop_index("ix_files_purge", "files")
    op.drop_index("ix_batches_purge", "batches")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("expires_at")
    with op.batch_alter_table("batches") as batch:
        for column in ("frozen_tally", "purged_at", "results_expire_at", "results_ttl"):
            batch.drop_column(column)
