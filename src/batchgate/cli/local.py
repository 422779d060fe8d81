"""Local commands: ``serve``, ``worker``, ``keys`` (keys.py), ``run`` and
``models`` open the database (or read the config) in this process; no server
is called."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from typing import TYPE_CHECKING, Any

from batchgate import config
from batchgate.cli import batch_file, database, keys, options
from batchgate.domain import errors

if TYPE_CHECKING:
    from batchgate.metrics.scrape import ScrapeSource
    from batchgate.services.keys import KeyService

log = logging.getLogger("batchgate.cli")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from batchgate import composition
    from batchgate.services.keys import KeyService

    settings = options.settings(args)
    # Bound before anything is stored: a busy port must not cost the one
    # showing of the first key (the next start would print none).
    listener = bind(settings.host, settings.port)
    store = composition.open_store(settings)
    location = database.locate(args, settings)
    _ensure_a_key(KeyService(store), args.api_key or config.env("BATCHGATE_API_KEY"), location)
    app = composition.create_server_app(settings, store, with_worker=not args.no_worker)
    metrics_listener(settings, store)
    models = ", ".join(settings.models)
    port = listener.getsockname()[1]
    print(f"batchgate serving http://{_url_host(settings.host)}:{port} (models: {models})")
    print(f"  data: {location.described}", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            # Our handler (logs.configure) formats uvicorn's records too.
            log_config=None,
            timeout_graceful_shutdown=int(settings.worker.drain_seconds) + 5,
            # The app trusts proxy headers itself (api/proxy.py), host included;
            # uvicorn's handling would hide the peer address it checks.
            proxy_headers=False,
        )
    )
    server.run(sockets=[listener])
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The API's socket, bound (uvicorn listens on it once the app is
    ready); a port in use is a one-line error saying how to choose another."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"error: cannot listen on {_url_host(host)}:{port}: {exc.strerror or exc}. "
            "Choose another port with --port N or BATCHGATE_PORT=N "
            "(e.g. BATCHGATE_PORT=8001 make serve); nothing was stored."
        ) from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _ensure_a_key(keys: KeyService, bootstrap: str | None, location: database.Location) -> None:
    """Accept ``bootstrap`` as a key; with none given and no key stored, make
    one and show it once. The API never runs unauthenticated."""
    if bootstrap:
        keys.register("bootstrap", bootstrap)
    elif not keys.has_active_keys():
        _record, secret = keys.create("default", admin=True)
        print("No API key existed, so one was created. It is shown only this once:", flush=True)
        print(f"  export BATCHGATE_API_KEY={secret}", flush=True)
    else:
        print(
            "API keys exist already (a key is shown only when it is made). To make "
            "another admin key: batchgate keys create --admin --name NAME, run with the "
            f"same data as this server ({location.described})",
            flush=True,
        )


def metrics_listener(settings: config.Settings, store: ScrapeSource) -> None:
    """``[metrics] port``: /metrics without a key on its own address, for a
    Prometheus on a private network. Only ``serve`` opens it (``worker``
    never does): the figures are fleet-wide, so one listener per API process
    says everything, and a worker on the same host as ``serve --no-worker``
    does not fight it for the port. If the port is taken anyway (a second
    ``serve`` on the host), say so and go on without it."""
    if not settings.metrics.enabled or settings.metrics.port is None:
        return
    import prometheus_client

    from batchgate.metrics import scrape

    address = f"{settings.metrics.host}:{settings.metrics.port}"
    registry = scrape.registry(store, list(settings.models), settings.worker.lease_seconds)
    try:
        server, _thread = prometheus_client.start_http_server(
            settings.metrics.port, addr=settings.metrics.host, registry=registry
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
    from batchgate import composition

    settings = options.settings(args)
    store = database.open_existing(args, settings)
    asyncio.run(composition.run_worker(settings, store))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a batch file here and now, without a server: the same store,
    worker and backends as ``serve``, in this process."""
    from tqdm import tqdm

    from batchgate import composition
    from batchgate.api import common
    from batchgate.dialects import message_results, native
    from batchgate.services.batch_create import BatchCreation, BatchSettings, ParsedRequest
    from batchgate.services.batches import BatchService

    settings = options.settings(args)
    # A bad file is reported before any database is looked for or opened.
    source = batch_file.read(args.file)
    if source.format is not batch_file.Format.NATIVE:
        raise errors.InvalidRequest(
            f"{args.file}: `run` takes native {{custom_id, params}} lines; send an "
            "OpenAI-format file to a server with `batchgate submit`"
        )
    parsed = native.parse_create(source.native_body())
    store = database.open_existing(args, settings)
    items = [ParsedRequest(item.custom_id, item.params) for item in parsed.requests]
    creation = BatchCreation(store, BatchSettings.of(settings))
    try:
        batch, _input_file = creation.create_inline("local", items, endpoint=native.ENDPOINT)
    except errors.InvalidRequest as exc:  # the configured limits: name the line
        raise errors.InvalidRequest(batch_file.name_lines(exc.message, source.lines)) from None
    print(batch.id, file=sys.stderr, flush=True)
    with tqdm(total=batch.total, unit="req", file=sys.stderr) as bar:

        def progress(current: Any) -> None:
            bar.n = current.tally.total - current.tally.open
            bar.refresh()

        ended = asyncio.run(composition.run_until_ended(settings, store, batch.id, progress))
    results = BatchService(store).results(ended)
    sink = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        for chunk in common.json_lines(results, message_results.result_line):
            sink.write(chunk)
    finally:
        if args.output:
            sink.close()
        else:
            sink.flush()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    if not database.config_path(args):
        # The server may have been started with a config this shell lacks.
        print(
            "no config file (--config or BATCHGATE_CONFIG): the built-in default models",
            file=sys.stderr,
        )
    for name, entry in settings.models.items():
        print(f"{name}\t{entry.backend}")
    return 0


# -- parsers --------------------------------------------------------------------
def add_commands(sub: options.Subparsers) -> None:
    serve = sub.add_parser("serve", help="run the API and a worker")
    options.server_options(serve)
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
    options.log_options(serve)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a worker alone on the same database")
    options.server_options(worker)
    database.init_option(worker)
    options.log_options(worker)
    worker.set_defaults(func=cmd_worker)

    keys.add_command(sub)

    run = sub.add_parser("run", help="run a JSONL file of {custom_id, params} here, no server")
    options.server_options(run)
    database.init_option(run)
    run.add_argument("file")
    run.add_argument("-o", "--output", help="write results here (default stdout)")
    options.log_options(run)
    run.set_defaults(func=cmd_run)

    models = sub.add_parser("models", help="list the configured model names")
    options.server_options(models)
    models.set_defaults(func=cmd_models)
