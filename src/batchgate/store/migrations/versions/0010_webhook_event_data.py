"""Webhook deliveries keep their event as data (``event_data``: the fields
besides the batch id), not as a rendered body: the store no longer knows the
wire shape, which the deliverer renders when it sends (dialects/webhooks.py).
Existing rows are converted: their body's ``data`` less its ``id``.

Revision ID: 0010_webhook_event_data
Revises: 0009_finished_index
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010_webhook_event_data"
down_revision = "0009_finished_index"

_ROWS = sa.table(
    "webhook_deliveries",
    sa.column("id", sa.String),
    sa.column("event_id", sa.String),
    sa.column("event_type", sa.String),
    sa.column("batch_id", sa.String),
    sa.column("created_at", sa.Float),
    sa.column("event_data", sa.Text),
)


def _rewrite(convert: Any) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_ROWS)).mappings().all()
    for row in rows:
        conn.execute(_ROWS.update().where(_ROWS.c.id == row["id"]).values(event_data=convert(row)))


def _data_of(row: Any) -> str:
    body = json.loads(row["event_data"])
    return json.dumps({k: v for k, v in body["data"].items() if k != "id"})


def _body_of(row: Any) -> str:
    """The body 0005-0009 stored (OpenAI's event shape), for a downgrade."""
    body = {
        "id": row["event_id"],
        "object": "event",
        "created_at": int(row["created_at"]),
        "type": row["event_type"],
        "data": {"id": row["batch_id"], **json.loads(row["event_data"])},
    }
    return json.dumps(body, separators=(",", ":"))


def upgrade() -> None:
    op.execute("ALTER TABLE webhook_deliveries RENAME COLUMN payload TO event_data")
    _rewrite(_data_of)


def downgrade() -> None:
    _rewrite(_body_of)
    op.execute("ALTER TABLE webhook_deliveries RENAME COLUMN event_data TO payload")
