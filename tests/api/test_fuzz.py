"""Schemathesis against the served OpenAPI document, every route, on SQLite
and on PostgreSQL: no 5xx, and every response matches the document (status
code, content type, body).

Two tests share one check. The first sends the schema's examples and a few
generated cases per operation (``BATCHGATE_FUZZ_EXAMPLES``, default 8, raises
the bound for a deeper local run); it is in ``make test-fast``. The second
sends schemathesis's coverage cases (every missing field, wrong type and
boundary the document allows: about 2,400 calls, 800 of them on the two batch
creations) and is ``slow``: ``make test`` runs it, the inner loop does not."""

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
    # No worker runs, so nothing calls the model: no upstream is needed.
    models = {MODEL: harness.fake_model(MODEL)}
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


def _schema(*phases: str) -> schemathesis.schemas.BaseSchema:
    """The document, loaded to send only the given schemathesis phases."""
    config = schemathesis.config.SchemathesisConfig.from_dict({"phases": {"enabled": False}})
    config.projects.default.phases.update(phases=list(phases))
    return schemathesis.openapi.from_dict(DOCUMENT, config=config)


DOCUMENT = _document()
schema = _schema("examples", "fuzzing")
coverage_schema = _schema("coverage")


def test_the_served_document_is_the_one_fuzzed(fuzz_server: harness.RunningServer) -> None:
    assert httpx.get(f"{fuzz_server.url}/openapi.json").json() == DOCUMENT


_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


def _call_and_validate(case: schemathesis.Case, server: harness.RunningServer) -> None:
    case.call_and_validate(
        base_url=server.url,
        headers={"authorization": f"Bearer {server.api_key}"},
        checks=[
            checks.not_a_server_error,
            openapi_checks.status_code_conformance,
            openapi_checks.content_type_conformance,
            openapi_checks.response_schema_conformance,
        ],
    )


@schema.parametrize()
@_SETTINGS
def test_every_route_answers_within_its_documented_schema(
    case: schemathesis.Case, fuzz_server: harness.RunningServer
) -> None:
    _call_and_validate(case, fuzz_server)


@pytest.mark.slow
@coverage_schema.parametrize()
@_SETTINGS
def test_every_route_answers_its_coverage_cases_within_its_documented_schema(
    case: schemathesis.Case, fuzz_server: harness.RunningServer
) -> None:
    _call_and_validate(case, fuzz_server)
