"""The SQL store's schema: migrations are idempotent, upgrade existing data,
and end where the table definitions are (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from batchgate.store import sql


def test_upgrading_makes_the_oldest_existing_key_the_admin(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from batchgate.store import engine as engine_module

    engine = engine_module.create_engine(store_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(engine_module._MIGRATIONS))
    with engine.connect().execution_options(write=True) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_initial")
        for name, created in (("second", 2.0), ("first", 1.0), ("third", 3.0)):
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) "
                    "VALUES (:id, :name, :hash, 'p', :created)"
                ),
                {"id": f"key_{name}", "name": name, "hash": name * 8, "created": created},
            )
        conn.commit()
    engine.dispose()
    upgraded = sql.SqlJobStore.open(store_url)
    try:
        assert {k.name: k.admin for k in upgraded.list_keys()} == {
            "first": True,
            "second": False,
            "third": False,
        }
    finally:
        upgraded.close()


def test_migrations_are_idempotent(store_url: str) -> None:
    for _ in range(2):
        sql.SqlJobStore.open(store_url).close()


def test_migrated_schema_matches_the_table_definitions(sql_store: sql.SqlJobStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from batchgate.store import tables

    with sql_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []
