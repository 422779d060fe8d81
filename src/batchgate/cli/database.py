"""Where the local commands' database is, and why there.

``serve`` and the other local commands find it the same way (``--database-url``
or ``--data-dir``, then ``BATCHGATE_DATABASE_URL`` or ``BATCHGATE_DATA_DIR``,
then the config file's ``[server]`` table, then ``./batchgate-data``). Only
``serve`` creates a new one unasked: ``keys create`` run from another
directory would otherwise make an empty database whose keys the server never
sees, so the others refuse unless given ``--init``, and say where they looked."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from batchgate import config

if TYPE_CHECKING:
    from batchgate.store import port


@dataclasses.dataclass(frozen=True)
class Location:
    url: str  # the database URL the settings resolve to
    described: str  # where that is and which setting chose it, for messages


def config_path(args: argparse.Namespace) -> str | None:
    """The config file the settings were loaded from (flag, then variable), if any."""
    return getattr(args, "config", None) or config.env("BATCHGATE_CONFIG")


def _from_file(args: argparse.Namespace, key: str) -> str | None:
    """``[server] key`` of the config file, if it sets it (load already read
    the file, so it exists and parses)."""
    path = config_path(args)
    if not path:
        return None
    with open(path, "rb") as fh:
        value = tomllib.load(fh).get("server", {}).get(key)
    return f"[server] {key} in {Path(path).resolve()}" if value else None


def _source(args: argparse.Namespace, setting: str, variable: str) -> str | None:
    """Which of flag, variable and config file set ``setting`` (the first, as
    ``config.load`` ranks them), or None."""
    if getattr(args, setting, None):
        return "--" + setting.replace("_", "-")
    if config.env(variable):
        return variable
    return _from_file(args, setting)


def locate(args: argparse.Namespace, settings: config.Settings) -> Location:
    url = settings.resolved_database_url()
    chosen_by = _source(args, "database_url", "BATCHGATE_DATABASE_URL")
    if settings.database_url and chosen_by:
        return Location(url, f"{_redacted(url)} (from {chosen_by})")
    chosen_by = _source(args, "data_dir", "BATCHGATE_DATA_DIR")
    where = settings.data_dir.resolve() / "batchgate.db"
    if chosen_by:
        return Location(url, f"{where} (data directory from {chosen_by})")
    return Location(url, f"{where} (the default data directory ./batchgate-data, in {Path.cwd()})")


def _redacted(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


def open_existing(args: argparse.Namespace, settings: config.Settings) -> port.JobStore:
    """The store, if a database is there or ``--init`` asks for a new one;
    otherwise an error naming where it looked."""
    from batchgate import composition
    from batchgate.store import engine

    location = locate(args, settings)
    if not getattr(args, "init", False) and not engine.database_exists(location.url):
        raise SystemExit(
            f"error: no batchgate database at {location.described}. Run this where "
            "`batchgate serve` runs, or point at its data with --data-dir, --database-url "
            "or --config (BATCHGATE_DATA_DIR, BATCHGATE_DATABASE_URL, BATCHGATE_CONFIG); "
            "pass --init to create a new, empty database there."
        )
    return composition.open_store(settings)


def init_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--init",
        action="store_true",
        help="create the database if there is none (`serve` does this on its first start)",
    )
