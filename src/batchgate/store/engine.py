"""Database engines: SQLite tuned for a job queue, or PostgreSQL via psycopg 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

_MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str) -> sa.Engine:
    """The engine for ``url``. Its errors never carry bound parameters
    (``hide_parameters``): a traceback would otherwise put webhook secrets,
    prompts and results into the log."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
    )


def _sqlite_engine(url: str) -> sa.Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        # The driver's own transaction handling is off (isolation_level=None);
        # we issue BEGIN ourselves so writes can say BEGIN IMMEDIATE: taking
        # the write lock up front avoids deadlocked upgrades between processes.
        connect_args={"check_same_thread": False, "isolation_level": None, "timeout": 30},
        pool_size=8,
        max_overflow=8,
        hide_parameters=True,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # NORMAL is durable across application crashes in WAL mode; only a
        # power loss may drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no head"
    return head


def current_revision(conn: sa.Connection) -> str | None:
    """The migration the database is at (None: never migrated)."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest migration (idempotent; safe to race:
    PostgreSQL serializes on an advisory lock, SQLite on its write lock)."""
    cfg = _alembic_config()
    with engine.connect().execution_options(write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_lock(7158742)")
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7158742)")
                conn.commit()


def database_exists(url: str) -> bool:
    """Whether ``url`` holds a batchgate schema, found without creating
    anything: a SQLite file that is not there is not opened (connecting
    would create it and its directory)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if not database or database == ":memory:" or not Path(database).is_file():
            return False
    probe = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        with probe.connect() as conn:
            return current_revision(conn) is not None
    finally:
        probe.dispose()
