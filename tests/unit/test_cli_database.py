"""Local commands open only a database that exists (``serve`` makes it on
its first start); ``--init`` makes one. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from batchgate.cli import database, options


@pytest.fixture(autouse=True)
def no_batchgate_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BATCHGATE_CONFIG", "BATCHGATE_DATA_DIR", "BATCHGATE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def arguments(url: str, *, init: bool = False) -> argparse.Namespace:
    return argparse.Namespace(config=None, data_dir=None, database_url=url, init=init)


def test_only_an_existing_database_is_opened_unless_init(store_url: str, tmp_path: Path) -> None:
    args = arguments(store_url)
    settings = options.settings(args)
    with pytest.raises(SystemExit) as refused:
        database.open_existing(args, settings)
    message = str(refused.value)
    assert "no batchgate database at" in message and "(from --database-url)" in message
    assert "--init" in message
    assert not (tmp_path / "batchgate.db").exists()  # SQLite: nothing created
    database.open_existing(arguments(store_url, init=True), settings).close()
    database.open_existing(args, settings).close()  # it exists now


def test_where_the_data_is_says_which_setting_chose_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    by_default = argparse.Namespace(config=None, data_dir=None, database_url=None)
    described = database.locate(by_default, options.settings(by_default)).described
    assert described == (
        f"{tmp_path / 'batchgate-data' / 'batchgate.db'} "
        f"(the default data directory ./batchgate-data, in {tmp_path})"
    )
    monkeypatch.setenv("BATCHGATE_DATA_DIR", str(tmp_path / "d"))
    described = database.locate(by_default, options.settings(by_default)).described
    assert described.endswith("(data directory from BATCHGATE_DATA_DIR)")
    config = tmp_path / "b.toml"
    config.write_text('[server]\ndatabase_url = "postgresql://u:secret@db/x"\n')
    from_file = argparse.Namespace(config=str(config), data_dir=None, database_url=None)
    described = database.locate(from_file, options.settings(from_file)).described
    assert "secret" not in described and f"[server] database_url in {config}" in described
