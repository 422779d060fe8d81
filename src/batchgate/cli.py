"""``batchgate``: serve | worker | run | submit | retry | status | results | cancel | keys |
models."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from batchgate import config, logs
from batchgate.domain import keys as key_model
from batchgate.domain import partial_results
from batchgate.domain.states import BatchStatus

if TYPE_CHECKING:
    from batchgate.store import port

log = logging.getLogger("batchgate.cli")


def _settings(args: argparse.Namespace) -> config.Settings:
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


# -- server side ----------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from batchgate import runtime
    from batchgate.services.keys import KeyService

    settings = _settings(args)
    store = runtime.open_store(settings)
    keys = KeyService(store)
    bootstrap = args.api_key or os.environ.get("BATCHGATE_API_KEY")
    if bootstrap:
        keys.register("bootstrap", bootstrap)
    elif not keys.has_active_keys():
        # First start: no key exists, so make one and show it once. The API
        # never runs unauthenticated.
        _record, secret = keys.create("default", admin=True)
        print("No API key existed, so one was created. It is shown only this once:", flush=True)
        print(f"  export BATCHGATE_API_KEY={secret}", flush=True)
    app = runtime.create_server_app(settings, store, with_worker=not args.no_worker)
    _metrics_listener(settings, store)
    models = ", ".join(settings.models)
    print(
        f"batchgate serving http://{settings.host}:{settings.port} (models: {models})", flush=True
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        # Our handler (logs.configure) formats uvicorn's records too.
        log_config=None,
        timeout_graceful_shutdown=int(settings.worker.drain_seconds) + 5,
        # The app trusts proxy headers itself (api/proxy.py), host included;
        # uvicorn's handling would hide the peer address it checks.
        proxy_headers=False,
    )
    return 0


def _metrics_listener(settings: config.Settings, store: port.JobStore) -> None:
    """``[metrics] port``: /metrics without a key on its own address, for a
    Prometheus on a private network. Only ``serve`` opens it (``worker``
    never does): the figures are fleet-wide, so one listener per API process
    says everything, and a worker on the same host as ``serve --no-worker``
    does not fight it for the port. If the port is taken anyway (a second
    ``serve`` on the host), say so and go on without it."""
    if not settings.metrics.enabled or settings.metrics.port is None:
        return
    import prometheus_client

    from batchgate.metrics import store as metrics_store

    address = f"{settings.metrics.host}:{settings.metrics.port}"
    try:
        server, _thread = prometheus_client.start_http_server(
            settings.metrics.port,
            addr=settings.metrics.host,
            registry=metrics_store.registry(
                store, list(settings.models), settings.worker.lease_seconds
            ),
        )
    except OSError as exc:
        log.error(
            "keyless /metrics listener not started: cannot bind %s (%s); /metrics is still "
            "served on the API port to an admin key",
            address,
            exc.strerror or exc,
        )
        return
    print(
        f"batchgate metrics on http://{settings.metrics.host}:{server.server_port}/metrics",
        flush=True,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from batchgate import runtime

    settings = _settings(args)
    store = runtime.open_store(settings)
    asyncio.run(runtime.run_worker(settings, store))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a batch file here and now, without a server: the same store,
    worker and backends as ``serve``, in this process."""
    from tqdm import tqdm

    from batchgate import runtime
    from batchgate.api import common
    from batchgate.dialects import message_results, native
    from batchgate.services.batches import BatchService, BatchSettings, ParsedRequest

    settings = _settings(args)
    store = runtime.open_store(settings)
    parsed = native.parse_create(_inline_body(args.file))
    items = [ParsedRequest(item.custom_id, item.params) for item in parsed.requests]
    service = BatchService(store, BatchSettings.of(settings))
    batch, _input_file = service.create_inline("local", items, endpoint=native.ENDPOINT)
    print(batch.id, file=sys.stderr, flush=True)
    with tqdm(total=batch.total, unit="req", file=sys.stderr) as bar:

        def progress(current: Any) -> None:
            bar.n = current.tally.total - current.tally.open
            bar.refresh()

        ended = asyncio.run(runtime.run_until_ended(settings, store, batch.id, progress))
    sink = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        for chunk in common.json_lines(service.results(ended), message_results.result_line):
            sink.write(chunk)
    finally:
        if args.output:
            sink.close()
        else:
            sink.flush()
    return 0


def _inline_body(path: str) -> bytes:
    """A JSONL file of ``{custom_id, params}`` lines as a native create body."""
    requests = []
    for number, line in enumerate(Path(path).read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            requests.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{number}: not valid JSON: {exc}") from None
    return orjson.dumps({"requests": requests})


def cmd_keys(args: argparse.Namespace) -> int:
    from batchgate import runtime
    from batchgate.services.keys import KeyService

    keys = KeyService(runtime.open_store(_settings(args)))
    if args.keys_command == "create":
        expires_at = (
            time.time() + config.parse_duration(args.expires_in) if args.expires_in else None
        )
        quotas = key_model.KeyQuotas(
            max_enqueued_tokens=dict(args.max_enqueued_tokens or []),
            max_active_batches=args.max_active_batches,
            max_requests_per_batch=args.max_requests_per_batch,
            max_file_bytes=args.max_file_bytes,
        )
        record, secret = keys.create(
            args.name, admin=args.admin, expires_at=expires_at, quotas=quotas
        )
        scope = "admin" if record.admin else "ordinary"
        print(f"created {scope} key {record.id} ({record.name}); it is shown only this once:")
        print(secret)
    elif args.keys_command == "list":
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
    else:
        if not keys.revoke_by_id_or_name(args.key):
            print(f"no active key with id or name {args.key!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.key}")
    return 0


def _quota_text(record: Any) -> str:
    quotas = record.quotas
    parts = [f"max-enqueued-tokens {m}={n}" for m, n in sorted(quotas.max_enqueued_tokens.items())]
    for name in ("max_active_batches", "max_requests_per_batch", "max_file_bytes"):
        value = getattr(quotas, name)
        if value is not None:
            parts.append(f"{name.replace('_', '-')} {value}")
    return "\t" + ", ".join(parts) if parts else ""


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(moment))


def cmd_models(args: argparse.Namespace) -> int:
    settings = _settings(args)
    for name, entry in settings.models.items():
        print(f"{name}\t{entry.backend}")
    return 0


# -- client side ----------------------------------------------------------------
def _client(args: argparse.Namespace) -> httpx.Client:
    url = args.url or os.environ.get("BATCHGATE_URL") or "http://127.0.0.1:8000"
    key = args.api_key or os.environ.get("BATCHGATE_API_KEY")
    if not key:
        raise SystemExit("an API key is needed: pass --api-key or set BATCHGATE_API_KEY")
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=300)


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text
        raise SystemExit(f"error {response.status_code}: {message}")
    return response


def _batch(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = _check(client.get(f"/v1/batches/{batch_id}", headers={"accept": "application/json"}))
    body: dict[str, Any] = response.json()
    return body


def _write_results(client: httpx.Client, batch_id: str, output: str | None) -> None:
    """An ended batch's results in its dialect's line shape. The results
    route serves every dialect (GET /v1/batches/{id} streams results for
    native batches only); its header says whether the batch has ended."""
    with client.stream("GET", f"{_batch_path(batch_id)}/results") as response:
        _check(response)
        if response.headers.get(partial_results.COMPLETE_HEADER) != "true":
            raise SystemExit(f"batch {batch_id} has not ended yet")
        sink = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            for chunk in response.iter_bytes():
                sink.write(chunk)
        finally:
            if output:
                sink.close()
            else:
                sink.flush()


def cmd_submit(args: argparse.Namespace) -> int:
    body = _inline_body(args.file)
    with _client(args) as client:
        if args.dry_run:
            estimate = _check(
                client.post(
                    "/v1/batches",
                    params={"dry_run": "true"},
                    content=body,
                    headers={"content-type": "application/json"},
                )
            ).json()
            sys.stdout.write(orjson.dumps(estimate, option=orjson.OPT_INDENT_2).decode() + "\n")
            return 0
        created = _check(
            client.post("/v1/batches", content=body, headers={"content-type": "application/json"})
        ).json()
        print(created["id"], flush=True)
        if args.wait:
            _wait_and_write(client, created, args)
    return 0


def _wait_and_write(
    client: httpx.Client, created: dict[str, Any], args: argparse.Namespace
) -> None:
    """Poll a batch with a progress bar until it ends, then write its results."""
    from tqdm import tqdm

    batch_id = created["id"]
    with tqdm(total=created["request_counts"]["total"], unit="req", file=sys.stderr) as bar:
        while True:
            batch = _batch(client, batch_id)
            counts = batch["request_counts"]
            bar.n = counts["completed"] + counts["failed"]
            bar.refresh()
            if BatchStatus(batch["status"]).is_ended:
                break
            time.sleep(args.poll)
    print(
        f"{batch_id}: {batch['status']} ({counts['completed']} succeeded, "
        f"{counts['failed']} failed)",
        file=sys.stderr,
    )
    _write_results(client, batch_id, args.output)


def _batch_path(batch_id: str) -> str:
    """Anthropic-dialect batches live under their own path."""
    prefix = "/v1/messages/batches" if batch_id.startswith("msgbatch_") else "/v1/batches"
    return f"{prefix}/{batch_id}"


def cmd_retry(args: argparse.Namespace) -> int:
    """A new batch of an ended batch's errored or expired requests."""
    body = {"error_types": args.only_errors} if args.only_errors else {}
    with _client(args) as client:
        created = _check(client.post(f"{_batch_path(args.batch_id)}/retry", json=body)).json()
        print(created["id"], flush=True)
        if args.wait:
            if "request_counts" not in created or "total" not in created["request_counts"]:
                raise SystemExit("--wait follows native and OpenAI batches only")
            _wait_and_write(client, created, args)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.batch_id is None:
        return _status_table(args)
    with _client(args) as client:
        sys.stdout.write(
            orjson.dumps(_batch(client, args.batch_id), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    return 0


def _status_table(args: argparse.Namespace) -> int:
    """The caller's newest batches in every dialect, one table."""
    from rich.console import Console

    from batchgate import status_table

    limit = {"limit": args.limit}
    with _client(args) as client:
        # Every batch of the key as a batch object (it has the cost), and the
        # Anthropic ones as Anthropic shows them (their status and counts).
        batches = _check(
            client.get("/v1/batches", params={**limit, "all_dialects": "true"})
        ).json()["data"]
        messages = _check(client.get("/v1/messages/batches", params=limit)).json()["data"]
    rows = status_table.rows(batches, messages)[: args.limit]
    console = Console()
    if not rows:
        console.print("no batches yet")
    else:
        console.print(status_table.render(rows))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _write_results(client, args.batch_id, args.output)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = _check(client.post(f"/v1/batches/{args.batch_id}/cancel")).json()
        print(f"{batch['id']}: {batch['status']}")
    return 0


# -- parser ---------------------------------------------------------------------
def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (or BATCHGATE_CONFIG)")
    parser.add_argument("--data-dir", help="where SQLite and data live (BATCHGATE_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLite or PostgreSQL URL (BATCHGATE_DATABASE_URL)")


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=[f.value for f in logs.LogFormat],
        default=os.environ.get("BATCHGATE_LOG_FORMAT", "text"),
        help="text lines, or one JSON object per line (BATCHGATE_LOG_FORMAT)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BATCHGATE_LOG_LEVEL", "info"),
        help="debug | info | warning | error (BATCHGATE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-error-messages",
        action="store_true",
        default=os.environ.get("BATCHGATE_LOG_ERROR_MESSAGES", "") not in ("", "0", "false"),
        help="log upstream error messages, not only their type and status; some servers "
        "quote the input in them (BATCHGATE_LOG_ERROR_MESSAGES=1)",
    )


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL (BATCHGATE_URL, default http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help="API key (BATCHGATE_API_KEY)")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API and a worker")
    _server_options(serve)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument(
        "--forwarded-allow-ips",
        help="proxies whose X-Forwarded-Proto/-Host/-For and Forwarded headers are trusted "
        "(comma-separated addresses or networks, or *; default 127.0.0.1,::1)",
    )
    serve.add_argument("--api-key", help="accept this key (BATCHGATE_API_KEY); stored hashed")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="API only; run `batchgate worker` processes separately",
    )
    _log_options(serve)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a worker alone on the same database")
    _server_options(worker)
    _log_options(worker)
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (printed once, last line)")
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
    listing = keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or name")
    revoke.add_argument("key")
    for command in (create, listing, revoke):
        _server_options(command)
    keys.set_defaults(func=cmd_keys)

    run = sub.add_parser("run", help="run a JSONL file of {custom_id, params} here, no server")
    _server_options(run)
    run.add_argument("file")
    run.add_argument("-o", "--output", help="write results here (default stdout)")
    _log_options(run)
    run.set_defaults(func=cmd_run)

    models = sub.add_parser("models", help="list the configured model names")
    _server_options(models)
    models.set_defaults(func=cmd_models)

    submit = sub.add_parser("submit", help="submit a JSONL file of {custom_id, params} lines")
    _client_options(submit)
    submit.add_argument("file")
    submit.add_argument("--wait", action="store_true", help="wait, with a progress bar")
    submit.add_argument("-o", "--output", help="with --wait: write results here")
    submit.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and estimate (requests, input tokens, cost range, ETA); store nothing",
    )
    submit.set_defaults(func=cmd_submit)

    retry = sub.add_parser(
        "retry", help="re-run an ended batch's errored and expired requests as a new batch"
    )
    _client_options(retry)
    retry.add_argument("batch_id")
    retry.add_argument(
        "--only-errors",
        action="append",
        metavar="TYPE",
        help="only requests that failed with this error type (repeatable; 'expired' for "
        "requests the completion window ran out on)",
    )
    retry.add_argument("--wait", action="store_true", help="wait, with a progress bar")
    retry.add_argument("-o", "--output", help="with --wait: write results here")
    retry.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    retry.set_defaults(func=cmd_retry)

    status = sub.add_parser(
        "status", help="show a batch as JSON; with no id, a table of your newest batches"
    )
    _client_options(status)
    status.add_argument("batch_id", nargs="?")
    status.add_argument("--limit", type=int, default=20, help="batches in the table")
    status.set_defaults(func=cmd_status)

    for name, func, text in (
        ("results", cmd_results, "download an ended batch's results"),
        ("cancel", cmd_cancel, "cancel a batch"),
    ):
        command = sub.add_parser(name, help=text)
        _client_options(command)
        command.add_argument("batch_id")
        if name == "results":
            command.add_argument("-o", "--output", help="write to this file (default stdout)")
        command.set_defaults(func=func)
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


if __name__ == "__main__":
    sys.exit(main())
