"""The ``batchgate`` command.

Local commands (``local.py``, with ``keys.py``) open the database themselves;
client commands (``client.py``) talk to a server over HTTP. Each group adds
its own subcommands to the parser built here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from batchgate import logs
from batchgate.cli import client, local

_USAGE = (
    "``batchgate``: serve | worker | run | submit | retry | status | results | cancel | keys |\n"
    "models."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgate", description=_USAGE)
    sub = parser.add_subparsers(dest="command", required=True)
    local.add_commands(sub)
    client.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(
        logs.LogFormat(getattr(args, "log_format", "text")),
        getattr(args, "log_level", "info"),
        error_messages=getattr(args, "log_error_messages", False),
    )
    from batchgate.domain import errors

    try:
        result: int = args.func(args)
    except errors.BatchgateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return result
