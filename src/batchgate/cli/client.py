"""Client commands: ``submit``, ``retry``, ``status``, ``results`` and
``cancel`` call a batchgate server over HTTP (``--url``/``BATCHGATE_URL``)
with a key (``--api-key``/``BATCHGATE_API_KEY``)."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from batchgate import config
from batchgate.cli import batch_file, options
from batchgate.domain import partial_results
from batchgate.domain.states import BatchStatus


def _server_url(args: argparse.Namespace) -> str:
    return str(args.url or config.env_or_default("BATCHGATE_URL"))


def _client(args: argparse.Namespace) -> httpx.Client:
    key = args.api_key or config.env("BATCHGATE_API_KEY")
    if not key:
        raise SystemExit("an API key is needed: pass --api-key or set BATCHGATE_API_KEY")
    return httpx.Client(
        base_url=_server_url(args), headers={"authorization": f"Bearer {key}"}, timeout=300
    )


def _reaching(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A client command whose server cannot be reached ends in one line
    naming the URL and how to change it, not an httpx traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            if isinstance(exc, httpx.TimeoutException):
                reason = "it did not answer in time"
            else:
                reason = str(exc) or type(exc).__name__
            raise SystemExit(
                f"error: cannot reach the batchgate server at {_server_url(args)} ({reason}). "
                "Start it with `batchgate serve`, or point at it with --url or BATCHGATE_URL."
            ) from None

    return run


def _check(response: httpx.Response, lines: list[int] | None = None) -> httpx.Response:
    """The response, if it is not an error; ``lines``: the line number of
    each request of a submitted file, which a message about ``requests[i]``
    is given instead."""
    if response.is_error:
        response.read()
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text
        if lines is not None:
            message = batch_file.name_lines(message, lines)
        raise SystemExit(f"error {response.status_code}: {message}")
    return response


def _batch(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = _check(client.get(f"/v1/batches/{batch_id}", headers={"accept": "application/json"}))
    body: dict[str, Any] = response.json()
    return body


def _batch_path(batch_id: str) -> str:
    """Anthropic-dialect batches live under their own path."""
    prefix = "/v1/messages/batches" if batch_id.startswith("msgbatch_") else "/v1/batches"
    return f"{prefix}/{batch_id}"


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


def _print_json(body: Any) -> None:
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


def cmd_submit(args: argparse.Namespace) -> int:
    source = batch_file.read(args.file)
    with _client(args) as client:
        if source.format is batch_file.Format.OPENAI:
            return _submit_openai(client, source, args)
        headers = {"content-type": "application/json"}
        body = source.native_body()
        if args.dry_run:
            params = {"dry_run": "true"}
            estimate = client.post("/v1/batches", params=params, content=body, headers=headers)
            return _print_estimate(_check(estimate, source.lines).json())
        created = client.post("/v1/batches", content=body, headers=headers)
        return _created(client, _check(created, source.lines).json(), args)


def _submit_openai(
    client: httpx.Client, source: batch_file.BatchFile, args: argparse.Namespace
) -> int:
    """An OpenAI-format file as the OpenAI SDK sends it: uploaded with
    purpose=batch, then a batch on the endpoint its lines name."""
    upload = {"file": (Path(source.path).name, source.data, "application/jsonl")}
    uploaded = _check(client.post("/v1/files", data={"purpose": "batch"}, files=upload)).json()
    create = {
        "input_file_id": uploaded["id"],
        "endpoint": source.endpoint,
        "completion_window": "24h",
    }
    if args.dry_run:
        try:
            estimate = client.post("/v1/batches", params={"dry_run": "true"}, json=create)
            return _print_estimate(_check(estimate).json())
        finally:  # a dry run stores nothing: the upload goes again
            client.delete(f"/v1/files/{uploaded['id']}")
    created = _check(client.post("/v1/batches", json=create)).json()
    if created["status"] == "failed":
        raise SystemExit(_refused_lines(created))
    return _created(client, created, args)


def _refused_lines(failed: dict[str, Any]) -> str:
    """Lines only the server could judge (its configured limits) fail the
    batch, as OpenAI's do; its errors list them by line."""
    found = (failed.get("errors") or {}).get("data") or []
    cap = batch_file.MAX_LISTED
    listed = [f"  line {e.get('line')}: {e.get('message')}" for e in found[:cap]]
    if len(found) > cap:
        listed.append(f"  ... and more: GET /v1/batches/{failed['id']}/errors lists every bad line")
    return f"error: batch {failed['id']} failed; the server refused:\n" + "\n".join(listed)


def _created(client: httpx.Client, created: dict[str, Any], args: argparse.Namespace) -> int:
    print(created["id"], flush=True)
    if args.wait:
        _wait_and_write(client, created, args)
    return 0


def _print_estimate(estimate: dict[str, Any]) -> int:
    """The estimate; a batch create would not take (or would not run) also
    gets a line saying why, and a non-zero exit."""
    _print_json(estimate)
    admission = estimate.get("admission") or {}
    if admission.get("admitted", True):
        return 0
    reason = (admission.get("error") or {}).get("message", "not admitted")
    print(f"not admitted: {reason}", file=sys.stderr)
    return 1


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
        _print_json(_batch(client, args.batch_id))
    return 0


def _status_table(args: argparse.Namespace) -> int:
    """The caller's newest batches in every dialect, one table."""
    from rich.console import Console

    from batchgate.cli import status_table

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
        console.print(status_table.render(rows, console.width))
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


# -- parsers --------------------------------------------------------------------
def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL (BATCHGATE_URL, default http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help="API key (BATCHGATE_API_KEY)")


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait, with a progress bar")
    parser.add_argument("-o", "--output", help="with --wait: write results here")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")


def add_commands(sub: options.Subparsers) -> None:
    submit = sub.add_parser(
        "submit",
        help="submit a JSONL file: native {custom_id, params} lines, or OpenAI's "
        "{custom_id, method, url, body} lines (sent through the Files + Batch route)",
    )
    _client_options(submit)
    submit.add_argument("file")
    _wait_options(submit)
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and estimate (requests, input tokens, cost range, ETA); store nothing",
    )
    submit.set_defaults(func=_reaching(cmd_submit))
    _add_retry(sub)
    _add_status(sub)
    for name, func, text in (
        ("results", cmd_results, "download an ended batch's results"),
        ("cancel", cmd_cancel, "cancel a batch"),
    ):
        command = sub.add_parser(name, help=text)
        _client_options(command)
        command.add_argument("batch_id")
        if name == "results":
            command.add_argument("-o", "--output", help="write to this file (default stdout)")
        command.set_defaults(func=_reaching(func))


def _add_retry(sub: options.Subparsers) -> None:
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
    _wait_options(retry)
    retry.set_defaults(func=_reaching(cmd_retry))


def _add_status(sub: options.Subparsers) -> None:
    status = sub.add_parser(
        "status", help="show a batch as JSON; with no id, a table of your newest batches"
    )
    _client_options(status)
    status.add_argument("batch_id", nargs="?")
    status.add_argument("--limit", type=int, default=20, help="batches in the table")
    status.set_defaults(func=_reaching(cmd_status))
