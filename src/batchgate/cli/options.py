"""What several commands share: their common options (defaults from the
``BATCHGATE_*`` variables, read through ``config.env``), and the settings they
build."""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from batchgate import config, logs


class Subparsers(Protocol):
    """``argparse``'s subparsers action, as the command groups use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def settings(args: argparse.Namespace) -> config.Settings:
    return config.load(
        getattr(args, "config", None),
        overrides={
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "data_dir": getattr(args, "data_dir", None),
            "database_url": getattr(args, "database_url", None),
            "forwarded_allow_ips": getattr(args, "forwarded_allow_ips", None),
        },
    )


def server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (or BATCHGATE_CONFIG)")
    parser.add_argument("--data-dir", help="where SQLite and data live (BATCHGATE_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLite or PostgreSQL URL (BATCHGATE_DATABASE_URL)")


def log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=[f.value for f in logs.LogFormat],
        default=config.env_or_default("BATCHGATE_LOG_FORMAT"),
        help="text lines, or one JSON object per line (BATCHGATE_LOG_FORMAT)",
    )
    parser.add_argument(
        "--log-level",
        default=config.env_or_default("BATCHGATE_LOG_LEVEL"),
        help="debug | info | warning | error (BATCHGATE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-error-messages",
        action="store_true",
        default=config.env_flag("BATCHGATE_LOG_ERROR_MESSAGES"),
        help="log upstream error messages, not only their type and status; some servers "
        "quote the input in them (BATCHGATE_LOG_ERROR_MESSAGES=1)",
    )
