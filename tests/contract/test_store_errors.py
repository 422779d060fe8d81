"""A failing statement's error names no bound parameter, on SQLite and
PostgreSQL: a 500's traceback would otherwise log webhook secrets, prompts
and results."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from batchgate.domain import ids
from batchgate.domain import webhooks as wh
from batchgate.store import sql

MARKER = "whsec_DoNotLogThisSecret"


def test_a_failed_statement_hides_its_parameters(sql_store: sql.SqlJobStore) -> None:
    endpoint = wh.Endpoint(
        ids.new_webhook_endpoint_id(), "key_a", "https://example.com/h", (), None, None, time.time()
    )
    assert sql_store.create_webhook_endpoint(endpoint, MARKER) is not None
    with pytest.raises(sa.exc.IntegrityError) as raised:
        sql_store.create_webhook_endpoint(endpoint, MARKER)  # the same id again
    assert MARKER not in str(raised.value)
    assert "hidden" in str(raised.value)
