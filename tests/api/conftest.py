"""Fixtures shared by the API suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import harness
from tests.fakes.upstream import FakeUpstream


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """A server whose one model, ``harness.FAKE_MODEL``, is the fake upstream
    at a list price of $2 / $6 per million tokens (a suite may define its own)."""
    models = {
        harness.FAKE_MODEL: harness.openai_model(
            harness.FAKE_MODEL, upstream.openai_base_url, price={"input": 2.0, "output": 6.0}
        )
    }
    with harness.serve(harness.make_settings(tmp_path, models)) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
def server_on_each_store(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> Iterator[harness.RunningServer]:
    """An API-only server (no worker), once on SQLite and once on PostgreSQL,
    whose one model, ``harness.FAKE_MODEL``, is the fake upstream."""
    database_url = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("store_url_postgres")
    models = {
        harness.FAKE_MODEL: harness.openai_model(harness.FAKE_MODEL, upstream.openai_base_url)
    }
    settings = harness.make_settings(tmp_path, models, database_url=database_url)
    with harness.serve(settings, with_worker=False) as running:
        yield running
