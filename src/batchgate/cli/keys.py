"""``batchgate keys create | list | revoke``: a local command, on the
database named by the config (the API's ``/v1/keys`` does the same remotely)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from batchgate import config
from batchgate.cli import database, options
from batchgate.domain import keys as key_model

if TYPE_CHECKING:
    from batchgate.services.keys import KeyService


def cmd_keys(args: argparse.Namespace) -> int:
    from batchgate.services.keys import KeyService

    keys = KeyService(database.open_existing(args, options.settings(args)))
    if args.keys_command == "create":
        return _create(keys, args)
    if args.keys_command == "list":
        return _list(keys)
    if not keys.revoke_by_id_or_name(args.key):
        print(f"no active key with id or name {args.key!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key}")
    return 0


def _create(keys: KeyService, args: argparse.Namespace) -> int:
    expires_at = time.time() + config.parse_duration(args.expires_in) if args.expires_in else None
    quotas = key_model.KeyQuotas(
        max_enqueued_tokens=dict(args.max_enqueued_tokens or []),
        max_active_batches=args.max_active_batches,
        max_requests_per_batch=args.max_requests_per_batch,
        max_file_bytes=args.max_file_bytes,
    )
    record, secret = keys.create(args.name, admin=args.admin, expires_at=expires_at, quotas=quotas)
    scope = "admin" if record.admin else "ordinary"
    print(f"created {scope} key {record.id} ({record.name}); it is shown only this once:")
    print(secret)
    return 0


def _list(keys: KeyService) -> int:
    now = time.time()
    for record in keys.list():
        if record.revoked_at:
            state = "revoked"
        elif record.is_expired(now):
            state = "expired"
        else:
            state = "active"
        scope = "admin" if record.admin else "ordinary"
        expires = _utc(record.expires_at) if record.expires_at else "never"
        print(
            f"{record.id}\t{record.name}\t{record.prefix}…\t{scope}\t"
            f"{_utc(record.created_at)}\texpires {expires}\t{state}{_quota_text(record)}"
        )
    return 0


def _quota_text(record: key_model.ApiKey) -> str:
    quotas = record.quotas
    parts = [f"max-enqueued-tokens {m}={n}" for m, n in sorted(quotas.max_enqueued_tokens.items())]
    for name in ("max_active_batches", "max_requests_per_batch", "max_file_bytes"):
        value = getattr(quotas, name)
        if value is not None:
            parts.append(f"{name.replace('_', '-')} {value}")
    return "\t" + ", ".join(parts) if parts else ""


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(moment))


# -- parser ---------------------------------------------------------------------
def _positive(most: int) -> Callable[[str], int]:
    """An argument type: an integer from 1 to ``most`` (a quota's bound,
    the same as the API's: see domain/keys.py)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"must be from 1 to {most:,}, not {value:,}")
        return value

    return parse


def _model_tokens(text: str) -> tuple[str, int]:
    model, sep, tokens = text.rpartition("=")
    if not sep or not model:
        raise argparse.ArgumentTypeError(f"expected MODEL=N, not {text!r}")
    return model, _positive(key_model.MAX_QUOTA_TOKENS)(tokens)


def add_command(sub: options.Subparsers) -> None:
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (printed once, last line)")
    _create_options(create)
    listing = keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or name")
    revoke.add_argument("key")
    for command in (create, listing, revoke):
        options.server_options(command)
    database.init_option(create)
    keys.set_defaults(func=cmd_keys)


def _create_options(create: argparse.ArgumentParser) -> None:
    create.add_argument("--name", required=True)
    create.add_argument(
        "--admin", action="store_true", help="may manage keys and see every tenant's objects"
    )
    create.add_argument("--expires-in", help="the key stops working after this long (e.g. 30d)")
    create.add_argument(
        "--max-enqueued-tokens",
        metavar="MODEL=N",
        action="append",
        type=_model_tokens,
        help="input tokens this key may have queued or running on MODEL (repeatable)",
    )
    count = _positive(key_model.MAX_QUOTA_COUNT)
    create.add_argument("--max-active-batches", type=count, metavar="N")
    create.add_argument("--max-requests-per-batch", type=count, metavar="N")
    create.add_argument(
        "--max-file-bytes",
        type=_positive(key_model.MAX_QUOTA_BYTES),
        metavar="N",
        help="bytes of files stored, in total",
    )
