"""The fake upstream's provider batch APIs, kept in memory: OpenAI Files +
Batches and Anthropic Message Batches, with a scriptable lifecycle and faults.

Routes (served by :mod:`tests.fakes.upstream`, same auth as the real-time
routes: ``api_key`` as Bearer, or ``x-api-key`` on the Anthropic routes):

* ``POST /v1/files`` (multipart: ``purpose``, ``file``), ``GET /v1/files``
  (``purpose``, ``limit``, ``after``, ``order``, newest first), ``GET
  /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``.
* ``POST /v1/batches {input_file_id, endpoint, completion_window, metadata}``,
  ``GET /v1/batches/{id}``, ``GET /v1/batches`` (``limit``, ``after``, newest
  first), ``POST /v1/batches/{id}/cancel``.
* ``POST /v1/messages/batches {requests: [{custom_id, params}]}``, ``GET
  /v1/messages/batches/{id}``, ``GET /v1/messages/batches`` (``limit``,
  ``before_id``, ``after_id``, newest first), ``POST .../{id}/cancel``,
  ``DELETE .../{id}``, ``GET .../{id}/results`` (JSONL; ``results_url``).

Each line is answered by the real-time routes' reply logic for its ``url``
(Anthropic: ``/v1/messages``), so its body is what a real-time call would
get, and a fault scripted for its fingerprint (``by_fingerprint``) is used
up by it: a status becomes the line's error (hang and drop become 500).
OpenAI lines that got a 200 go to the output file, the others to the error
file (``response`` with the error body); lines a batch never answered go to
the error file as ``error: {code: "batch_expired" | "batch_cancelled"}``
when it expired or was cancelled, and nowhere when it failed. Anthropic
results are ``succeeded`` / ``errored`` / ``canceled`` / ``expired``
(unanswered lines of a failed batch: ``errored`` with an ``api_error``).

Lifecycle: an OpenAI batch is ``validating`` until the server's next tick
(malformed input lines fail it there, with ``errors.data``), then
``in_progress``. Lines are answered ``process_after_seconds`` after create
plus ``latency_ms``, all at once or ``line_rate`` per second, then the batch
ends ``completed``. ``hold`` (setting, taken by batches created while it is
on, or per batch) keeps a batch in_progress until released. Cancel makes it
``cancelling`` / ``canceling`` until the next tick, which ends it with the
answered lines kept. Per-batch control (``POST /_batches/{id}``, ``id`` ``*``
= every open batch, or :meth:`BatchApi.control`): ``{"hold": bool}``,
``{"progress": K}`` (answer the first K lines now), ``{"end":
"completed"|"failed"|"expired"|"cancelled", "done": K}`` (answer the first K
lines, default the ones answered so far, then end it so).

Settings (``POST /_control`` or ``configure``; see :class:`BatchSettings`):
``process_after_seconds``, ``line_rate``, ``hold``, ``max_batch_requests``,
``max_batch_bytes``, ``token_limit_mode`` (``"fail"``: an OpenAI batch over
the limits is accepted and ends ``failed`` with ``token_limit_exceeded``, as
OpenAI does; ``"create"``: its create answers 400 ``token_limit_exceeded``;
Anthropic always answers 413 ``request_too_large``), ``shuffle_output``,
``drop_output_lines`` (a budget: that many successful lines are left out of
the next output files / results, and not billed), ``content_chunk_delay_ms``
and ``content_chunk_bytes`` (file content and results stream in chunks that
far apart; the call's log entry counts ``chunks`` and ``sent``),
``create_delay_after_ms`` (a create's batch exists, listed, before its
answer is sent), ``create_hang_before`` (seconds, or true: every create
hangs and creates nothing), and ``route_faults`` ({route kind: [fault
specs]}, used up in order; kinds in :data:`ROUTE_KINDS`; a spec with
``"after": true`` does the route's work and then fails).

Calls are in the server's call log (``/_calls``) with their route kind as
the fingerprint; an OpenAI create with its body (the file, the metadata), a
Message Batches create with its ``custom_ids``.

``GET /_batches``: every batch of both APIs (its input custom_ids, state,
lines answered, lines dropped), every file (deleted ones too, marked
``deleted``), and ``billed``: per custom_id,
how many successful lines were delivered for it across all batches.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import random
import re
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from tests.fakes import upstream_replies as replies
from tests.fakes import upstream_wire as wire

OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings")
FILE_PURPOSES = frozenset({"batch", "user_data", "assistants", "fine-tune", "vision", "evals"})
WINDOW_SECONDS = 24 * 3600.0
# Lines answered per tick before the event loop gets a turn: keeps the
# server answering polls while a 20,000-line batch is worked through.
CHUNK_LINES = 1000
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# (method, path pattern, route kind); "*" matches one path segment (an id).
_ROUTES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("POST", ("files",), "files.upload"),
    ("GET", ("files",), "files.list"),
    ("GET", ("files", "*"), "files.get"),
    ("DELETE", ("files", "*"), "files.delete"),
    ("GET", ("files", "*", "content"), "files.content"),
    ("POST", ("batches",), "batches.create"),
    ("GET", ("batches",), "batches.list"),
    ("GET", ("batches", "*"), "batches.get"),
    ("POST", ("batches", "*", "cancel"), "batches.cancel"),
    ("POST", ("messages", "batches"), "messages_batches.create"),
    ("GET", ("messages", "batches"), "messages_batches.list"),
    ("GET", ("messages", "batches", "*"), "messages_batches.get"),
    ("DELETE", ("messages", "batches", "*"), "messages_batches.delete"),
    ("POST", ("messages", "batches", "*", "cancel"), "messages_batches.cancel"),
    ("GET", ("messages", "batches", "*", "results"), "messages_batches.results"),
)
ROUTE_KINDS = frozenset(kind for _, _, kind in _ROUTES)
_CREATES = frozenset({"batches.create", "messages_batches.create"})


def owns(path: str) -> bool:
    """Whether a path belongs to the batch APIs (else the real-time routes)."""
    return path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches"))


def _match(method: str, path: str) -> tuple[str, list[str]] | None:
    parts = path.strip("/").split("/")[1:]
    for route_method, pattern, kind in _ROUTES:
        if route_method == method and len(pattern) == len(parts):
            ids = [part for part, want in zip(parts, pattern, strict=True) if want == "*"]
            if all(want in ("*", part) for part, want in zip(parts, pattern, strict=True)):
                return kind, ids
    return None


@dataclasses.dataclass
class BatchSettings:
    process_after_seconds: float = 0.0
    line_rate: float = 0.0  # lines per second once answering starts; 0 = all at once
    hold: bool = False
    max_batch_requests: int | None = None
    max_batch_bytes: int | None = None
    token_limit_mode: str = "fail"  # "fail" | "create"
    shuffle_output: bool = False
    drop_output_lines: int = 0
    content_chunk_delay_ms: float = 0.0
    content_chunk_bytes: int = 65536
    create_delay_after_ms: float = 0.0
    create_hang_before: float = 0.0
    route_faults: dict[str, list[wire.Fault]] = dataclasses.field(default_factory=dict)

    def update(self, key: str, value: Any) -> None:
        if key == "route_faults":
            unknown = set(value) - ROUTE_KINDS
            if unknown:
                raise ValueError(f"unknown route kind {sorted(unknown)[0]!r}")
            value = {
                kind: [wire.Fault.parse(spec) for spec in specs] for kind, specs in value.items()
            }
        elif key == "token_limit_mode" and value not in ("fail", "create"):
            raise ValueError('token_limit_mode must be "fail" or "create"')
        elif key == "create_hang_before" and isinstance(value, bool):
            value = 300.0 if value else 0.0
        setattr(self, key, value)


SETTING_KEYS = frozenset(field.name for field in dataclasses.fields(BatchSettings))


class Host(Protocol):
    """What the batch APIs need from the server core (its settings, auth and
    the real-time reply logic)."""

    settings: Any  # tests.fakes.upstream.Settings; .batch is a BatchSettings

    def authorized(self, anthropic: bool, headers: dict[str, str]) -> bool: ...

    def log_call(
        self, path: str, fingerprint: str, headers: dict[str, str], body: Any, arrived: float
    ) -> dict[str, Any]: ...

    def answer_line(self, url: str, body: Any) -> tuple[int, dict[str, Any]]: ...


@dataclasses.dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: float
    # Deleted files are gone from every route but stay in ``report`` (a
    # test counts uploads, and sees which files were deleted).
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclasses.dataclass
class Line:
    custom_id: str
    url: str
    body: Any


@dataclasses.dataclass
class Batch:
    id: str
    api: str  # "openai" | "anthropic"
    lines: list[Line]
    created_at: float
    start_at: float  # when answering may start (created + process_after_seconds)
    held: bool
    state: str  # validating | in_progress | cancelling | completed | failed | expired | cancelled
    endpoint: str = "/v1/messages"
    input_file_id: str | None = None
    metadata: dict[str, str] | None = None
    completion_window: str = "24h"
    # Why validation fails it (OpenAI: malformed lines, or over the limits).
    invalid: list[dict[str, Any]] | None = None
    times: dict[str, float] = dataclasses.field(default_factory=dict)
    # Answered lines in input order: line i is done[i] = (succeeded, result line).
    done: list[tuple[bool, bytes]] = dataclasses.field(default_factory=list)
    errors: dict[str, Any] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: bytes = b""  # Anthropic's results JSONL, once ended
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # Anthropic, once ended
    dropped: list[str] = dataclasses.field(default_factory=list)
    deleted: bool = False

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def succeeded(self) -> int:
        return sum(1 for ok, _ in self.done if ok)


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def openai_batch(batch: Batch) -> dict[str, Any]:
    times = batch.times
    succeeded = batch.succeeded
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.state,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "in_progress_at": _ts(times.get("in_progress")),
        "expires_at": int(batch.created_at + WINDOW_SECONDS),
        "finalizing_at": _ts(times.get("finalizing")),
        "completed_at": _ts(times.get("completed")),
        "failed_at": _ts(times.get("failed")),
        "expired_at": _ts(times.get("expired")),
        "cancelling_at": _ts(times.get("cancelling")),
        "cancelled_at": _ts(times.get("cancelled")),
        "request_counts": {
            "total": 0 if batch.state == "validating" else len(batch.lines),
            "completed": succeeded,
            "failed": len(batch.done) - succeeded,
        },
        "metadata": batch.metadata,
    }


def _rfc3339(value: float | None) -> str | None:
    if value is None:
        return None
    moment = datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def anthropic_batch(batch: Batch, host: str) -> dict[str, Any]:
    # Anthropic moves requests out of ``processing`` only when the whole
    # batch ends; the counts always sum to the number of requests.
    counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
    counts = {"processing": len(batch.lines), **counts}
    if batch.ended:
        counts = {"processing": 0, **batch.counts}
    status = (
        "ended" if batch.ended else "canceling" if batch.state == "cancelling" else "in_progress"
    )
    results_url = f"http://{host}/v1/messages/batches/{batch.id}/results"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": _rfc3339(batch.times.get("ended")),
        "created_at": _rfc3339(batch.created_at),
        "expires_at": _rfc3339(batch.created_at + WINDOW_SECONDS),
        "cancel_initiated_at": _rfc3339(batch.times.get("cancelling")),
        "archived_at": None,
        "results_url": results_url if batch.ended else None,
    }


def _page(
    items: list[Any], limit: int, after: str | None, before: str | None
) -> tuple[list[Any], bool]:
    """A cursor page of ``items`` (in list order, each with ``.id``): the
    ``limit`` items just after ``after``, or just before ``before``."""
    ids = [item.id for item in items]
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(end - limit, 0)
        return items[start:end], start > 0
    start = ids.index(after) + 1 if after in ids else 0
    return items[start : start + limit], start + limit < len(items)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``multipart/form-data`` fields: name -> (filename, bytes)."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise ValueError("expected a multipart/form-data body")
    match = re.search(r'boundary="?([^";]+)"?', params)
    if match is None:
        raise ValueError("multipart body without a boundary")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + match.group(1).encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode("latin-1")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name is not None:
            fields[name.group(1)] = (
                filename.group(1) if filename else None,
                content.removesuffix(b"\r\n"),
            )
    return fields


def _line_error(
    code: str, message: str, line: int | None, param: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _line_problem(obj: Any, endpoint: str, seen: set[str]) -> tuple[str, str, str | None] | None:
    if not isinstance(obj, dict):
        return "invalid_request", "Each line must be a JSON object.", None
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id"
    if custom_id in seen:
        return "duplicate_custom_id", f"The custom_id {custom_id!r} is not unique.", "custom_id"
    if obj.get("method") != "POST":
        return "invalid_method", "Only the POST method is supported.", "method"
    if obj.get("url") != endpoint:
        return "mismatched_endpoint", f"The url must be the batch's endpoint {endpoint}.", "url"
    if not isinstance(obj.get("body"), dict):
        return "invalid_request", "The body must be a JSON object.", "body"
    return None


def parse_input(content: bytes, endpoint: str) -> tuple[list[Line], list[dict[str, Any]]]:
    """An OpenAI input file's lines, and the errors of its malformed lines."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            errors.append(_line_error("invalid_json_line", "This line is not valid JSON.", number))
            continue
        problem = _line_problem(obj, endpoint, seen)
        if problem is not None:
            errors.append(_line_error(problem[0], problem[1], number, problem[2]))
            continue
        seen.add(obj["custom_id"])
        lines.append(Line(obj["custom_id"], obj["url"], obj["body"]))
    if not lines and not errors:
        errors.append(_line_error("empty_file", "The input file has no requests.", None))
    return lines, errors


@dataclasses.dataclass(frozen=True)
class Request:
    kind: str
    ids: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    now: float

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def limit(self, default: int, most: int) -> int:
        value = int(self.query.get("limit", default))
        if not 1 <= value <= most:
            raise ValueError(f"limit must be between 1 and {most}")
        return value


class Refused(Exception):
    """A request the API answers with an error (status, error type/code, message)."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


class BatchApi:
    """Files, batches and their lifecycle. Called under the server core's
    lock (requests, :meth:`tick`, control), so it keeps no lock of its own."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        self.open: dict[str, Batch] = {}
        self.billed: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(host.settings.seed)
        self._seq = 0
        self._handlers: dict[str, Callable[[Request], wire.Action]] = {
            "files.upload": self._upload,
            "files.list": self._list_files,
            "files.get": lambda req: self._json(req, self._file(req.ids[0]).to_json()),
            "files.delete": self._delete_file,
            "files.content": lambda req: self._content(req, self._file(req.ids[0]).content),
            "batches.create": self._create_openai,
            "batches.list": self._list_openai,
            "batches.get": lambda req: self._json(req, openai_batch(self._batch(req, "openai"))),
            "batches.cancel": self._cancel_openai,
            "messages_batches.create": self._create_anthropic,
            "messages_batches.list": self._list_anthropic,
            "messages_batches.get": self._get_anthropic,
            "messages_batches.delete": self._delete_anthropic,
            "messages_batches.cancel": self._cancel_anthropic,
            "messages_batches.results": self._results,
        }

    @property
    def settings(self) -> BatchSettings:
        batch_settings: BatchSettings = self.host.settings.batch
        return batch_settings

    def _new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:06d}{secrets.token_hex(6)}"

    # --- HTTP

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
        now: float,
    ) -> wire.Action:
        matched = _match(method, path)
        anthropic = path.startswith("/v1/messages/")
        if matched is None:
            refused = Refused(404, "not_found_error", f"no route {method} {path}")
            return self._error(anthropic, keep_alive, refused)
        kind, ids = matched
        # In the call log under the route kind as its fingerprint, so
        # ``calls("batches.get")`` are the polls.
        args = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        req = Request(kind, ids, args, headers, body, keep_alive, now)
        entry = self.host.log_call(path, kind, headers, _logged_body(req), now)
        action, outcome, status = self._dispatch(req, anthropic)
        entry.update(method=method, outcome=outcome, status=status)
        if action.kind == "stream":
            # How far a slow download got: a test can act in the middle of it.
            entry.update(chunks=len(action.chunks), sent=0)
            action.progress = entry
        return action

    def _dispatch(self, req: Request, anthropic: bool) -> tuple[wire.Action, str, int | None]:
        """The action for a matched request, with its log outcome and status."""
        if not self.host.authorized(anthropic, req.headers):
            message = "invalid x-api-key" if anthropic else "Incorrect API key provided"
            refused = Refused(401, "authentication_error", message)
            return self._error(anthropic, req.keep_alive, refused), "unauthorized", 401
        if req.kind in _CREATES and self.settings.create_hang_before > 0:
            return (
                wire.Action(0.0, "hang", hang_seconds=self.settings.create_hang_before),
                "hang",
                None,
            )
        scripted = self.settings.route_faults.get(req.kind)
        fault = scripted.pop(0) if scripted else wire.Fault("ok")
        faulted = (
            self._fault(anthropic, req.keep_alive, fault),
            fault.label(),
            fault.status if fault.kind == "status" else None,
        )
        if fault.kind != "ok" and not fault.after:
            return faulted
        try:
            answered = self._handlers[req.kind](req), "ok", 200
        except (Refused, ValueError) as exc:
            if not isinstance(exc, Refused):
                exc = Refused(400, "invalid_request_error", str(exc))
            answered = self._error(anthropic, req.keep_alive, exc), str(exc.status), exc.status
        # A fault "after" the work: the work is done, the client sees the fault.
        return faulted if fault.kind != "ok" else answered

    def _fault(self, anthropic: bool, keep_alive: bool, fault: wire.Fault) -> wire.Action:
        if fault.kind == "drop":
            return wire.Action(0.0, "drop")
        if fault.kind == "hang":
            return wire.Action(0.0, "hang", hang_seconds=fault.hang_seconds)
        error = replies.anthropic_error if anthropic else replies.openai_error
        message = fault.message or f"fake upstream: injected HTTP {fault.status}"
        payload = error(fault.status, message)
        return wire.Action(
            0.0, "respond", wire.http_response(fault.status, payload, keep_alive, fault.headers())
        )

    def _error(self, anthropic: bool, keep_alive: bool, refused: Refused) -> wire.Action:
        if anthropic:
            code = (
                refused.code
                if refused.code.endswith("_error") or refused.code == "request_too_large"
                else "invalid_request_error"
            )
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": code, "message": refused.message},
            }
        else:
            kind = "invalid_request_error" if refused.status < 500 else "server_error"
            code = None if refused.code.endswith("_error") else refused.code
            payload = {
                "error": {
                    "message": refused.message,
                    "type": kind,
                    "param": refused.param,
                    "code": code,
                }
            }
        return wire.Action(0.0, "respond", wire.http_response(refused.status, payload, keep_alive))

    def _json(self, req: Request, payload: Any, delay: float = 0.0) -> wire.Action:
        return wire.Action(delay, "respond", wire.http_response(200, payload, req.keep_alive))

    def _content(
        self, req: Request, data: bytes, content_type: str = "application/octet-stream"
    ) -> wire.Action:
        delay = self.settings.content_chunk_delay_ms / 1000.0
        if delay <= 0 or not data:
            return wire.Action(
                0.0, "respond", wire.raw_response(200, data, req.keep_alive, content_type)
            )
        size = max(int(self.settings.content_chunk_bytes), 1)
        chunks = [data[start : start + size] for start in range(0, len(data), size)]
        head = wire.response_head(200, len(data), req.keep_alive, content_type)
        return wire.Action(0.0, "stream", head, chunks=chunks, chunk_delay=delay)

    # --- OpenAI Files

    def _file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None or stored.deleted:
            raise Refused(404, "not_found_error", f"No such File object: {file_id}", "id")
        return stored

    def _upload(self, req: Request) -> wire.Action:
        fields = parse_multipart(req.headers.get("content-type", ""), req.body)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose not in FILE_PURPOSES:
            raise Refused(
                400,
                "invalid_request_error",
                f"purpose: {purpose!r} is not a file purpose",
                "purpose",
            )
        if "file" not in fields:
            raise Refused(400, "invalid_request_error", "file: a file part is required", "file")
        filename, content = fields["file"]
        stored = StoredFile(self._new_id("file-"), filename or "upload", purpose, content, req.now)
        self.files[stored.id] = stored
        return self._json(req, stored.to_json())

    def _list_files(self, req: Request) -> wire.Action:
        order = req.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ValueError('order must be "asc" or "desc"')
        purpose = req.query.get("purpose")
        items = [
            f
            for f in self.files.values()
            if not f.deleted and (purpose is None or f.purpose == purpose)
        ]
        if order == "desc":
            items.reverse()
        page, more = _page(items, req.limit(10000, 10000), req.query.get("after"), None)
        return self._json(req, _list([f.to_json() for f in page], more))

    def _delete_file(self, req: Request) -> wire.Action:
        stored = self._file(req.ids[0])
        stored.deleted = True
        return self._json(req, {"id": stored.id, "object": "file", "deleted": True})

    # --- OpenAI Batches

    def _batch(self, req: Request, api: str) -> Batch:
        batch = self.batches.get(req.ids[0])
        if batch is None or batch.api != api or batch.deleted:
            kind = "Message Batch" if api == "anthropic" else "Batch"
            raise Refused(404, "not_found_error", f"No such {kind}: {req.ids[0]}", "batch_id")
        return batch

    def _create_openai(self, req: Request) -> wire.Action:
        body = req.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        file_id = body.get("input_file_id")
        stored = self.files.get(file_id) if isinstance(file_id, str) else None
        if stored is None or stored.deleted or stored.purpose != "batch":
            raise Refused(
                400,
                "invalid_request_error",
                f"input_file_id: no batch file {file_id!r}",
                "input_file_id",
            )
        endpoint = body.get("endpoint")
        if endpoint not in OPENAI_ENDPOINTS:
            raise Refused(
                400,
                "invalid_request_error",
                f"endpoint: must be one of {', '.join(OPENAI_ENDPOINTS)}",
                "endpoint",
            )
        if body.get("completion_window") != "24h":
            raise Refused(
                400,
                "invalid_request_error",
                'completion_window: must be "24h"',
                "completion_window",
            )
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(isinstance(v, str) for v in metadata.values())
        ):
            raise Refused(
                400, "invalid_request_error", "metadata: at most 16 string values", "metadata"
            )
        lines, invalid = parse_input(stored.content, endpoint)
        if self._too_large(len(lines), len(stored.content)):
            if self.settings.token_limit_mode == "create":
                raise Refused(
                    400,
                    "token_limit_exceeded",
                    "Enqueued token limit reached for this batch.",
                    None,
                )
            invalid = [
                _line_error(
                    "token_limit_exceeded", "Enqueued token limit reached for this batch.", None
                )
            ]
        batch = self._register("openai", [] if invalid else lines, req.now, state="validating")
        batch.endpoint, batch.input_file_id, batch.metadata = endpoint, stored.id, metadata
        batch.invalid = invalid or None
        return self._json(req, openai_batch(batch), self.settings.create_delay_after_ms / 1000.0)

    def _too_large(self, requests: int, size: int) -> bool:
        most_requests = self.settings.max_batch_requests
        most_bytes = self.settings.max_batch_bytes
        return (most_requests is not None and requests > most_requests) or (
            most_bytes is not None and size > most_bytes
        )

    def _register(self, api: str, lines: list[Line], now: float, state: str) -> Batch:
        prefix = "msgbatch_" if api == "anthropic" else "batch_"
        batch = Batch(
            id=self._new_id(prefix),
            api=api,
            lines=lines,
            created_at=now,
            start_at=now + self.settings.process_after_seconds,
            held=self.settings.hold,
            state=state,
        )
        if state == "in_progress":
            batch.times["in_progress"] = now
        self.batches[batch.id] = batch
        self.open[batch.id] = batch
        return batch

    def _list_openai(self, req: Request) -> wire.Action:
        items = [b for b in reversed(self.batches.values()) if b.api == "openai"]
        page, more = _page(items, req.limit(20, 100), req.query.get("after"), None)
        return self._json(req, _list([openai_batch(b) for b in page], more))

    def _cancel_openai(self, req: Request) -> wire.Action:
        batch = self._batch(req, "openai")
        if batch.ended and batch.state != "cancelled":
            raise Refused(
                400, "invalid_request_error", f"Cannot cancel a batch with status {batch.state}."
            )
        self._cancel(batch, req.now)
        return self._json(req, openai_batch(batch))

    def _cancel(self, batch: Batch, now: float) -> None:
        if not batch.ended and batch.state != "cancelling":
            batch.state = "cancelling"
            batch.times["cancelling"] = now

    # --- Anthropic Message Batches

    def _create_anthropic(self, req: Request) -> wire.Action:
        if "anthropic-version" not in req.headers:
            raise ValueError("anthropic-version: header is required")
        lines = _anthropic_lines(req.json())
        if self._too_large(len(lines), len(req.body)):
            raise Refused(
                413,
                "request_too_large",
                "Request exceeds the maximum allowed number of requests or bytes.",
            )
        batch = self._register("anthropic", lines, req.now, state="in_progress")
        payload = anthropic_batch(batch, req.headers.get("host", "127.0.0.1"))
        return self._json(req, payload, self.settings.create_delay_after_ms / 1000.0)

    def _get_anthropic(self, req: Request) -> wire.Action:
        return self._json(
            req, anthropic_batch(self._batch(req, "anthropic"), req.headers.get("host", ""))
        )

    def _list_anthropic(self, req: Request) -> wire.Action:
        items = [
            b for b in reversed(self.batches.values()) if b.api == "anthropic" and not b.deleted
        ]
        page, more = _page(
            items, req.limit(20, 1000), req.query.get("after_id"), req.query.get("before_id")
        )
        host = req.headers.get("host", "")
        data = [anthropic_batch(b, host) for b in page]
        return self._json(
            req,
            {
                "data": data,
                "has_more": more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def _cancel_anthropic(self, req: Request) -> wire.Action:
        batch = self._batch(req, "anthropic")
        self._cancel(batch, req.now)
        return self._json(req, anthropic_batch(batch, req.headers.get("host", "")))

    def _delete_anthropic(self, req: Request) -> wire.Action:
        batch = self._batch(req, "anthropic")
        if not batch.ended:
            raise Refused(
                400, "invalid_request_error", f"Batch {batch.id} has not ended; cancel it first."
            )
        batch.deleted = True
        return self._json(req, {"id": batch.id, "type": "message_batch_deleted"})

    def _results(self, req: Request) -> wire.Action:
        batch = self._batch(req, "anthropic")
        if not batch.ended:
            raise Refused(
                404, "not_found_error", f"Batch {batch.id} has not ended; no results yet."
            )
        return self._content(req, batch.results, "application/binary")

    # --- lifecycle

    def tick(self, now: float) -> bool:
        """Move open batches along; True when lines are left for the next
        tick (more than one chunk was due)."""
        budget = CHUNK_LINES
        for batch in list(self.open.values()):
            budget -= self._advance(batch, now, budget)
            if budget <= 0:
                return True
        return False

    def _advance(self, batch: Batch, now: float, budget: int) -> int:
        if batch.state == "validating":
            self._validated(batch, now)
            return 0
        if batch.state == "cancelling":
            self._end(batch, "cancelled", now)
            return 0
        ready = batch.start_at + self.host.settings.latency_ms / 1000.0
        if batch.held or now < ready:
            return 0
        rate = self.settings.line_rate
        due = len(batch.lines) if rate <= 0 else min(len(batch.lines), int((now - ready) * rate))
        answered = self._answer_upto(batch, min(due, len(batch.done) + budget))
        if len(batch.done) == len(batch.lines):
            self._end(batch, "completed", now)
        return answered

    def _validated(self, batch: Batch, now: float) -> None:
        if batch.invalid:
            batch.errors = {"object": "list", "data": batch.invalid}
            self._end(batch, "failed", now)
            return
        batch.state = "in_progress"
        batch.times["in_progress"] = now

    def _answer_upto(self, batch: Batch, count: int) -> int:
        start = len(batch.done)
        for line in batch.lines[start:count]:
            batch.done.append(self._answer(batch, line))
        return max(count - start, 0)

    def _answer(self, batch: Batch, line: Line) -> tuple[bool, bytes]:
        status, body = self.host.answer_line(line.url, line.body)
        self._seq += 1
        if batch.api == "anthropic":
            result = (
                {"type": "succeeded", "message": body}
                if status == 200
                else {"type": "errored", "error": body}
            )
            return status == 200, orjson.dumps({"custom_id": line.custom_id, "result": result})
        record = {
            "id": f"batch_req_{self._seq:08d}",
            "custom_id": line.custom_id,
            "response": {"status_code": status, "request_id": f"req_{self._seq:08d}", "body": body},
            "error": None,
        }
        return status == 200, orjson.dumps(record)

    def _end(self, batch: Batch, state: str, now: float) -> None:
        delivered, failed = self._delivered(batch)
        unanswered = batch.lines[len(batch.done) :]
        if batch.api == "anthropic":
            self._end_anthropic(batch, state, delivered, failed, unanswered)
        else:
            self._end_openai(batch, state, delivered, failed, unanswered, now)
        batch.state = state
        if state == "completed":
            batch.times["finalizing"] = now
        batch.times[state] = batch.times["ended"] = now
        self.open.pop(batch.id, None)

    def _delivered(self, batch: Batch) -> tuple[list[bytes], list[bytes]]:
        """The answered lines as delivered: successes less the dropped ones
        (billed), and the failures."""
        ok = [(batch.lines[i].custom_id, raw) for i, (good, raw) in enumerate(batch.done) if good]
        failed = [raw for good, raw in batch.done if not good]
        drop = min(self.settings.drop_output_lines, len(ok))
        if drop:
            self.settings.drop_output_lines -= drop
            gone = set(self._rng.sample(range(len(ok)), drop))
            batch.dropped = [ok[i][0] for i in sorted(gone)]
            ok = [item for i, item in enumerate(ok) if i not in gone]
        self.billed.update(custom_id for custom_id, _ in ok)
        return [raw for _, raw in ok], failed

    def _shuffled(self, lines: list[bytes]) -> list[bytes]:
        if self.settings.shuffle_output:
            self._rng.shuffle(lines)
        return lines

    def _end_openai(
        self,
        batch: Batch,
        state: str,
        delivered: list[bytes],
        failed: list[bytes],
        unanswered: list[Line],
        now: float,
    ) -> None:
        code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(state)
        if code is not None:
            message = "This request could not be executed before the batch ended."
            failed = failed + [
                orjson.dumps(
                    {
                        "id": f"batch_req_{batch.id}_{i}",
                        "custom_id": line.custom_id,
                        "response": None,
                        "error": {"code": code, "message": message},
                    }
                )
                for i, line in enumerate(unanswered)
            ]
        if state == "failed" and batch.errors is None:
            batch.errors = {
                "object": "list",
                "data": [_line_error("server_error", "The batch failed.", None)],
            }
        batch.output_file_id = self._output_file(
            batch, "output", "batch_output", self._shuffled(delivered), now
        )
        batch.error_file_id = self._output_file(batch, "error", "batch_output", failed, now)

    def _output_file(
        self, batch: Batch, name: str, purpose: str, lines: list[bytes], now: float
    ) -> str | None:
        if not lines:
            return None
        content = b"\n".join(lines) + b"\n"
        stored = StoredFile(
            self._new_id("file-"), f"{batch.id}_{name}.jsonl", purpose, content, now
        )
        self.files[stored.id] = stored
        return stored.id

    def _end_anthropic(
        self,
        batch: Batch,
        state: str,
        delivered: list[bytes],
        failed: list[bytes],
        unanswered: list[Line],
    ) -> None:
        rest = {
            "expired": {"type": "expired"},
            "cancelled": {"type": "canceled"},
            "failed": {
                "type": "errored",
                "error": replies.anthropic_error(500, "Internal server error"),
            },
        }.get(state)
        tail = (
            [orjson.dumps({"custom_id": line.custom_id, "result": rest}) for line in unanswered]
            if rest
            else []
        )
        lines = self._shuffled(delivered + failed + tail)
        batch.results = b"".join(line + b"\n" for line in lines)
        ok = batch.succeeded
        counts = {"succeeded": ok, "errored": len(batch.done) - ok, "canceled": 0, "expired": 0}
        kind = {"expired": "expired", "cancelled": "canceled", "failed": "errored"}.get(state)
        if kind is not None:
            counts[kind] += len(unanswered)
        batch.counts = counts

    # --- control and counters

    def control(self, batch_id: str, ops: dict[str, Any], now: float) -> list[dict[str, Any]]:
        unknown = set(ops) - {"hold", "progress", "end", "done"}
        if unknown:
            raise ValueError(f"unknown batch control {sorted(unknown)[0]!r}")
        end = ops.get("end")
        if end is not None and end not in ENDED:
            raise ValueError(f"end must be one of {sorted(ENDED)}")
        if batch_id == "*":
            targets = list(self.open.values())
        elif batch_id in self.batches:
            targets = [self.batches[batch_id]]
        else:
            raise KeyError(batch_id)
        for batch in targets:
            self._control_one(batch, ops, now)
        return [self._entry(batch) for batch in targets]

    def _control_one(self, batch: Batch, ops: dict[str, Any], now: float) -> None:
        if batch.ended:
            raise ValueError(f"batch {batch.id} has ended ({batch.state})")
        if "hold" in ops:
            batch.held = bool(ops["hold"])
        if batch.state == "validating" and ("progress" in ops or "end" in ops):
            self._validated(batch, now)
            if batch.ended:
                return
        if "progress" in ops:
            self._answer_upto(batch, int(ops["progress"]))
        end = ops.get("end")
        if end is not None:
            done = len(batch.lines) if end == "completed" else int(ops.get("done", len(batch.done)))
            self._answer_upto(batch, done)
            self._end(batch, end, now)

    def _entry(self, batch: Batch) -> dict[str, Any]:
        return {
            "id": batch.id,
            "api": batch.api,
            "state": batch.state,
            "endpoint": batch.endpoint,
            "input_file_id": batch.input_file_id,
            "metadata": batch.metadata,
            "created_at": batch.created_at,
            "ended_at": batch.times.get("ended"),
            "held": batch.held,
            "deleted": batch.deleted,
            "custom_ids": [line.custom_id for line in batch.lines],
            "done": len(batch.done),
            "succeeded": batch.succeeded,
            "dropped": batch.dropped,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
        }

    def report(self) -> dict[str, Any]:
        return {
            "batches": [self._entry(batch) for batch in self.batches.values()],
            "files": [
                {**stored.to_json(), "deleted": stored.deleted} for stored in self.files.values()
            ],
            "billed": dict(self.billed),
        }


def _logged_body(req: Request) -> Any:
    """What the call log keeps of a body: an OpenAI create's (small: the
    file, the metadata), a Message Batches create's custom_ids; nothing of
    the others (uploads are big)."""
    if req.kind == "batches.create":
        return req.json()
    if req.kind == "messages_batches.create":
        body = req.json()
        requests = body.get("requests") if isinstance(body, dict) else None
        if isinstance(requests, list):
            return {"custom_ids": [r.get("custom_id") for r in requests if isinstance(r, dict)]}
    return None


def _list(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _anthropic_lines(body: Any) -> list[Line]:
    if not isinstance(body, dict) or set(body) != {"requests"}:
        raise ValueError('body must be {"requests": [...]}')
    requests = body["requests"]
    if not isinstance(requests, list) or not requests:
        raise ValueError("requests: must be a non-empty array")
    lines: list[Line] = []
    seen: set[str] = set()
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise ValueError(f"requests.{index}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
        if custom_id in seen:
            raise ValueError(f"requests.{index}.custom_id: {custom_id!r} is not unique")
        if not isinstance(item.get("params"), dict):
            raise ValueError(f"requests.{index}.params: must be an object")
        seen.add(custom_id)
        lines.append(Line(custom_id, "/v1/messages", item["params"]))
    return lines
