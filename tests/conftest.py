"""Shared fixtures: real SQLite files and a real, throwaway PostgreSQL database."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from batchgate import testing
from batchgate.store import port

if TYPE_CHECKING:
    from batchgate.store import sql
    from tests.fakes.upstream import FakeUpstream

# psycopg and the SQL store (SQLAlchemy, Alembic) are imported by the fixtures
# that use them: the unit tests never do, and importing them costs seconds.

PG_ADMIN_URL = os.environ.get("BATCHGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

_E2E = Path(__file__).parent / "e2e"
_POSTGRES_FIXTURES = {"pg_url", "store_url_postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what ``make test-fast`` leaves out, so no test has to remember:
    everything under tests/e2e is ``e2e``; a test on PostgreSQL (a "postgres"
    parameter, or a PostgreSQL fixture) is ``postgres``."""
    for item in items:
        if _E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgres" in callspec.params.values()
        if on_postgres or _POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards.
    CI starts the server; a missing server is a failure, not a skip."""
    import psycopg

    name = f"batchgate_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'batchgate.db'}"
    url: str = request.getfixturevalue("pg_url")
    _reset_postgres(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request.param, request, tmp_path)


@pytest.fixture
def store_url_postgres(pg_url: str) -> str:
    """The throwaway PostgreSQL database, emptied for this test."""
    _reset_postgres(pg_url)
    return pg_url


@pytest.fixture
def sql_store(store_url: str) -> Iterator[sql.SqlJobStore]:
    from batchgate.store import sql

    job_store = sql.SqlJobStore.open(store_url)
    yield job_store
    job_store.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest schema once per run. Migrating
    from nothing takes ~35 ms, copying this ~1 ms: a test that needs a
    migrated store (not the migrations themselves: those take ``store_url``,
    an empty database) starts from a copy."""
    from batchgate.store import sql

    path = tmp_path_factory.mktemp("migrated") / "batchgate.db"
    sql.SqlJobStore.open(f"sqlite:///{path}").close()
    # Closing the last connection checkpoints the WAL into the file itself.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[port.JobStore]:
    """Every JobStore the contract holds for: SQLite, PostgreSQL, in memory."""
    from batchgate.store import sql

    job_store: port.JobStore
    if request.param == "memory":
        job_store = testing.MemoryJobStore()
    elif request.param == "sqlite":
        database = tmp_path / "batchgate.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), database)
        job_store = sql.SqlJobStore.open(f"sqlite:///{database}")
    else:
        job_store = sql.SqlJobStore.open(_url(request.param, request, tmp_path))
    yield job_store
    job_store.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A scripted fake upstream (OpenAI- and Anthropic-compatible) on loopback."""
    from tests.fakes.upstream import FakeUpstream

    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[FakeUpstream]:
    """One fake upstream for all of a module's tests; a test takes it as
    ``fake``, reset."""
    from tests.fakes.upstream import FakeUpstream

    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(module_upstream: FakeUpstream) -> FakeUpstream:
    """The module's fake upstream with nothing left of the tests before
    (scripts, settings, batches, counters)."""
    module_upstream.reset()
    return module_upstream
