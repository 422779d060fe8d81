"""Schemathesis against the served OpenAPI document, every route, on SQLite
and on PostgreSQL: no 5xx, and every response matches the document (status
code, content type, body).

Bounded (a few examples per operation) so it runs in CI in about a minute a store;
``BATCHGATE_FUZZ_EXAMPLES`` raises the bound for a deeper local run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from batchgate import config
from batchgate.api import app as api_app
from batchgate.testing.memory_store import MemoryJobStore
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"
EXAMPLES = int(os.environ.get("BATCHGATE_FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[harness.RunningServer]:
    """The fuzzed server on each store: PostgreSQL refuses what SQLite keeps
    (NUL in text, strings past a VARCHAR), so a 5xx may hide on one only."""
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    database_url = None
    if request.param == "postgres":
        database_url = _empty_postgres(request.getfixturevalue("pg_url"))
    with FakeUpstream() as upstream:
        models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
        settings = harness.make_settings(tmp_path, models, database_url=database_url)
        # The fuzzer sends hundreds of calls a second on one key.
        settings.rate_limit = config.RateLimitSettings(requests_per_second=0)
        with harness.serve(settings, with_worker=False) as running:
            yield running


def _empty_postgres(url: str) -> str:
    """The session's throwaway database, emptied (the fixture that does so
    for other suites is per test; this server lives for the module)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


def _document() -> dict[str, Any]:
    """The OpenAPI document the server serves, built without a server so
    the cases can be generated at collection time (a test below checks that
    the served one is the same)."""
    app = api_app.create_app(api_app.build_services(config.Settings(), MemoryJobStore()))
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(fuzz_server: harness.RunningServer) -> None:
    assert httpx.get(f"{fuzz_server.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_every_route_answers_within_its_documented_schema(
    case: schemathesis.Case, fuzz_server: harness.RunningServer
) -> None:
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers={"authorization": f"Bearer {fuzz_server.api_key}"},
        checks=[
            checks.not_a_server_error,
            openapi_checks.status_code_conformance,
            openapi_checks.content_type_conformance,
            openapi_checks.response_schema_conformance,
        ],
    )
