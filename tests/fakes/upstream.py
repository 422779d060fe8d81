"""A scriptable fake LLM upstream: a real HTTP server on 127.0.0.1.

Speaks ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/responses``
and ``/v1/embeddings`` (OpenAI shapes) and ``POST /v1/messages`` (Anthropic
shape); what it answers is described in :mod:`tests.fakes.upstream_replies`
and :mod:`tests.fakes.upstream_endpoints`. It also serves the provider batch
APIs (OpenAI Files + Batches, Anthropic Message Batches), whose lines get the
same answers, with their own lifecycle controls and faults: see
:mod:`tests.fakes.upstream_batches` (settings below the ones here, ``GET
/_batches``, ``POST /_batches/{id}``). It can inject faults and keeps a call log,
so tests can assert how a client behaved (retries, spacing, call counts).

In a test (server thread in this process)::

    with FakeUpstream(latency_ms=0) as fake:
        fake.script_for("question 7", "429:2", "ok")   # this request: 429 (Retry-After 2), then ok
        ... point a backend at fake.openai_base_url or fake.base_url ...
        assert len(fake.calls("question 7")) == 2

As its own process (benchmarks; uvloop, ~10k small requests/s on one core)::

    python -m tests.fakes.upstream --port 0 --latency-ms 50
    # prints: http://127.0.0.1:PORT
    # or from Python: with start_process(latency_ms=50) as remote: remote.configure(...)

Faults (a "fault spec" is a string or an object):

* ``"ok"``; ``"drop"`` (close the socket without a response); ``"hang"`` (no
  response until the client gives up, or ``hang_seconds``, default 300);
* a status: ``"500"``, ``"502"``, ``"503"``, ``"529"``, ``"400"``, ...;
  ``"429:2"`` adds ``Retry-After: 2``;
* ``{"status": 429, "retry_after": 1.5, "retry_after_ms": 1500,
  "retry_after_date": 3, "message": "..."}`` (``retry_after_date`` sends
  ``Retry-After`` as an HTTP-date that many seconds ahead), or
  ``{"kind": "hang", "hang_seconds": 5}``.

Which fault a call gets: the next one scripted for its fingerprint
(``by_fingerprint``), else the next in the global ``script``, else with
probability ``fault_rate`` one of ``rate_faults`` (seeded, reproducible),
else ``ok``. Latency (``latency_ms``) applies to every call.

Control over HTTP (same settings as :meth:`FakeUpstream.configure`):

* ``POST /_control`` with a JSON object of settings to change:
  ``latency_ms``, ``fault_rate``, ``rate_faults`` (list of specs), ``script``
  (list of specs, replaces), ``by_fingerprint`` ({fingerprint: [specs]},
  replaces), ``seed``, ``api_key`` (null = no auth), ``log_bodies``.
  Answers the current settings (also ``GET /_control``).
* ``GET /_calls`` (``?since=N`` for calls with ``seq > N``): ``{"calls": [...]}``.
* ``POST /_reset``: clear the log, scripts and counters (and every batch and
  file); settings go back to the ones the server started with.

Batch API calls are logged too, with their route kind (``batches.get``, ...)
as the fingerprint and no body; the lines inside a batch are not.

Call log entries: ``seq`` (1, 2, ...), ``t`` (``time.time()`` when the request
was fully received), ``path``, ``fingerprint``, ``attempt`` (1 for the first
call with this fingerprint), ``outcome`` (``ok``, a status such as ``429``,
``hang``, ``drop``, ``invalid`` or ``unauthorized``), ``status`` (sent status
or null), ``headers`` (request headers, lower-case), ``body`` (parsed request,
null when ``log_bodies`` is off).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import dataclasses
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, cast

import httptools
import httpx
import orjson

from tests.fakes import upstream_batches as batches
from tests.fakes import upstream_endpoints as endpoints
from tests.fakes import upstream_replies as replies
from tests.fakes import upstream_wire as wire


@dataclasses.dataclass
class Settings:
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    rate_faults: list[Fault] = dataclasses.field(default_factory=lambda: [Fault("status", 500)])
    script: list[Fault] = dataclasses.field(default_factory=list)
    by_fingerprint: dict[str, list[Fault]] = dataclasses.field(default_factory=dict)
    seed: int = 0
    api_key: str | None = None
    log_bodies: bool = True
    # The provider batch APIs' settings (tests.fakes.upstream_batches), set
    # and shown flat beside these.
    batch: batches.BatchSettings = dataclasses.field(default_factory=batches.BatchSettings)

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key in ("rate_faults", "script"):
                setattr(self, key, [Fault.parse(spec) for spec in value])
            elif key == "by_fingerprint":
                self.by_fingerprint = {
                    fp: [Fault.parse(spec) for spec in specs] for fp, specs in value.items()
                }
            elif key in ("latency_ms", "fault_rate", "seed", "api_key", "log_bodies"):
                setattr(self, key, value)
            elif key in batches.SETTING_KEYS:
                self.batch.update(key, value)
            else:
                raise ValueError(f"unknown setting {key!r}")

    def to_json(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        settings.update(settings.pop("batch"))
        return settings


@dataclasses.dataclass(frozen=True)
class Route:
    """How one path reads a request and writes its reply."""

    validate: Callable[[Any], str | None]
    conversation: Callable[[dict[str, Any]], replies.Conversation]
    render: Callable[[dict[str, Any], replies.Reply, int], dict[str, Any]]
    anthropic: bool = False


ROUTES: dict[str, Route] = {
    "/v1/chat/completions": Route(
        replies.validate_openai, replies.openai_conversation, replies.openai_completion
    ),
    "/v1/messages": Route(
        replies.validate_anthropic,
        replies.anthropic_conversation,
        replies.anthropic_message,
        anthropic=True,
    ),
    "/v1/completions": Route(
        endpoints.validate_completion,
        endpoints.completion_conversation,
        endpoints.text_completion,
    ),
    "/v1/responses": Route(
        endpoints.validate_response, endpoints.response_conversation, endpoints.response_object
    ),
    "/v1/embeddings": Route(
        endpoints.validate_embeddings,
        endpoints.embeddings_conversation,
        endpoints.embeddings_list,
    ),
}


# Kept under their old names for callers of this module.
Fault = wire.Fault
FaultSpec = wire.FaultSpec
Action = wire.Action
_http_response = wire.http_response
# How often the server moves batches along when none has lines due.
BATCH_TICK_SECONDS = 0.01


class Core:
    """Settings, scripts and the call log; decides each request's Action.

    Called from the server's event loop and, for control, from test threads:
    one lock guards the state.
    """

    def __init__(self, initial: Settings) -> None:
        self._initial = initial
        self._lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        self.settings = copy.deepcopy(self._initial)
        self.log: list[dict[str, Any]] = []
        self._attempts: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(self.settings.seed)
        self.batch_api = batches.BatchApi(self)
        self._line_seq = 0

    # --- control

    def reset(self) -> None:
        with self._lock:
            self._reset_locked()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.settings.update(changes)
            if "seed" in changes:
                self._rng = random.Random(self.settings.seed)
            return self.settings.to_json()

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self.log if entry["seq"] > since]

    # --- requests

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> Action:
        path, _, query = target.partition("?")
        if path.startswith("/_"):
            return Action(0.0, "respond", self._control(method, path, query, body, keep_alive))
        arrived = time.time()
        if batches.owns(path):
            with self._lock:
                return self.batch_api.handle(
                    method, path, query, headers, body, keep_alive, arrived
                )
        route = ROUTES.get(path)
        if method != "POST" or route is None:
            return Action(
                0.0,
                "respond",
                _http_response(
                    404, {"error": {"message": f"no route {method} {path}"}}, keep_alive
                ),
            )
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        with self._lock:
            return self._decide(route, path, headers, parsed, keep_alive, arrived)

    def _decide(
        self,
        route: Route,
        path: str,
        headers: dict[str, str],
        parsed: Any,
        keep_alive: bool,
        arrived: float,
    ) -> Action:
        settings = self.settings
        anthropic = route.anthropic
        problem = route.validate(parsed)
        conv = None
        if problem is None:
            conv = route.conversation(parsed)
        fingerprint = conv.last_user_text if conv else ""
        entry = self.log_call(path, fingerprint, headers, parsed, arrived)
        error = replies.anthropic_error if anthropic else replies.openai_error
        delay = settings.latency_ms / 1000.0

        if not self.authorized(anthropic, headers):
            entry.update(outcome="unauthorized", status=401)
            return Action(
                delay,
                "respond",
                _http_response(
                    401,
                    error(401, "invalid x-api-key" if anthropic else "Incorrect API key provided"),
                    keep_alive,
                ),
            )
        if anthropic and problem is None and "anthropic-version" not in headers:
            problem = "anthropic-version: header is required"
        if problem is not None or conv is None:
            entry.update(outcome="invalid", status=400)
            return Action(
                delay,
                "respond",
                _http_response(400, error(400, problem or "invalid request"), keep_alive),
            )

        fault = self._next_fault(fingerprint)
        entry["outcome"] = fault.label()
        entry["status"] = fault.status if fault.kind in ("ok", "status") else None
        if fault.kind == "drop":
            return Action(delay, "drop")
        if fault.kind == "hang":
            return Action(delay, "hang", hang_seconds=fault.hang_seconds)
        if fault.kind == "status":
            message = fault.message or f"fake upstream: injected HTTP {fault.status}"
            return Action(
                delay,
                "respond",
                _http_response(
                    fault.status, error(fault.status, message), keep_alive, fault.headers()
                ),
            )
        reply = replies.reply_for(conv)
        return Action(
            delay,
            "respond",
            _http_response(200, route.render(parsed, reply, entry["seq"]), keep_alive),
        )

    def log_call(
        self, path: str, fingerprint: str, headers: dict[str, str], body: Any, arrived: float
    ) -> dict[str, Any]:
        """A new call log entry (the caller fills in outcome and status)."""
        self._attempts[fingerprint] += 1
        entry: dict[str, Any] = {
            "seq": len(self.log) + 1,
            "t": arrived,
            "path": path,
            "fingerprint": fingerprint,
            "attempt": self._attempts[fingerprint],
            "headers": dict(headers),
            "body": body if self.settings.log_bodies else None,
        }
        self.log.append(entry)
        return entry

    def authorized(self, anthropic: bool, headers: dict[str, str]) -> bool:
        key = self.settings.api_key
        if key is None:
            return True
        if anthropic:
            return (
                headers.get("x-api-key") == key or headers.get("authorization") == f"Bearer {key}"
            )
        return headers.get("authorization") == f"Bearer {key}"

    def answer_line(self, url: str, body: Any) -> tuple[int, dict[str, Any]]:
        """One batch line, answered as a real-time call to ``url`` would be
        (same validation and reply), using up a fault scripted for its
        fingerprint: a status is the line's error, hang and drop a 500.
        Called by the batch APIs under the lock; lines are not in the call log."""
        route = ROUTES[url]
        error = replies.anthropic_error if route.anthropic else replies.openai_error
        problem = route.validate(body)
        if problem is not None:
            return 400, error(400, problem)
        conv = route.conversation(body)
        scripted = self.settings.by_fingerprint.get(conv.last_user_text)
        fault = scripted.pop(0) if scripted else Fault("ok")
        if fault.kind != "ok":
            status = fault.status if fault.kind == "status" else 500
            return status, error(status, fault.message or f"fake upstream: injected HTTP {status}")
        self._line_seq += 1
        # Ids apart from the real-time calls' (which use the call log's seq).
        return 200, route.render(body, replies.reply_for(conv), 10_000_000 + self._line_seq)

    def tick_batches(self, now: float) -> bool:
        with self._lock:
            return self.batch_api.tick(now)

    def batch_report(self) -> dict[str, Any]:
        with self._lock:
            return self.batch_api.report()

    def batch_control(self, batch_id: str, ops: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            return self.batch_api.control(batch_id, ops, time.time())

    def _next_fault(self, fingerprint: str) -> Fault:
        settings = self.settings
        scripted = settings.by_fingerprint.get(fingerprint)
        if scripted:
            return scripted.pop(0)
        if settings.script:
            return settings.script.pop(0)
        if settings.fault_rate > 0 and self._rng.random() < settings.fault_rate:
            return self._rng.choice(settings.rate_faults)
        return Fault("ok")

    def _control(self, method: str, path: str, query: str, body: bytes, keep_alive: bool) -> bytes:
        try:
            if path == "/_calls" and method == "GET":
                since = int(urllib.parse.parse_qs(query).get("since", ["0"])[0])
                return _http_response(200, {"calls": self.calls(since)}, keep_alive)
            if path == "/_control" and method == "GET":
                return _http_response(200, self.configure({}), keep_alive)
            if path == "/_control" and method == "POST":
                return _http_response(200, self.configure(orjson.loads(body or b"{}")), keep_alive)
            if path == "/_reset" and method == "POST":
                self.reset()
                return _http_response(200, {"ok": True}, keep_alive)
            if path == "/_health":
                return _http_response(200, {"ok": True}, keep_alive)
            if path == "/_batches" and method == "GET":
                return _http_response(200, self.batch_report(), keep_alive)
            if path.startswith("/_batches/") and method == "POST":
                ops = orjson.loads(body or b"{}")
                controlled = self.batch_control(path.removeprefix("/_batches/"), ops)
                return _http_response(200, {"batches": controlled}, keep_alive)
        except KeyError as exc:
            return _http_response(404, {"error": {"message": f"no batch {exc}"}}, keep_alive)
        except (ValueError, TypeError, AttributeError) as exc:
            return _http_response(400, {"error": {"message": str(exc)}}, keep_alive)
        return _http_response(404, {"error": {"message": f"no route {method} {path}"}}, keep_alive)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, parsed by httptools. Requests on a connection
    are answered in order; with no delay they are answered synchronously."""

    def __init__(self, core: Core, connections: set[_Connection]) -> None:
        self._core = core
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pending: collections.deque[tuple[str, str, dict[str, str], bytes, bool]] = (
            collections.deque()
        )
        self._task: asyncio.Task[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode("ascii")
        request = (
            method,
            self._url.decode("latin-1"),
            self._headers,
            b"".join(self._body),
            self._parser.should_keep_alive(),
        )
        self._pending.append(request)
        if self._task is None:
            self._drain()

    def _drain(self) -> None:
        while self._pending and self._transport is not None and not self._transport.is_closing():
            method, target, headers, body, keep_alive = self._pending.popleft()
            action = self._core.handle(method, target, headers, body, keep_alive)
            if action.delay > 0 or action.kind in ("hang", "stream"):
                self._task = asyncio.get_running_loop().create_task(
                    self._act_later(action, keep_alive)
                )
                return
            self._act(action, keep_alive)

    def _act(self, action: Action, keep_alive: bool) -> None:
        assert self._transport is not None
        if action.kind == "drop":
            self._transport.close()
            return
        self._transport.write(action.response)
        if not keep_alive:
            self._transport.close()

    async def _act_later(self, action: Action, keep_alive: bool) -> None:
        await asyncio.sleep(action.delay)
        if action.kind == "hang":
            await asyncio.sleep(action.hang_seconds)
            self.close()
            return
        if action.kind == "stream":
            await self._stream(action, keep_alive)
        else:
            self._act(action, keep_alive)
        self._task = None
        self._drain()

    async def _stream(self, action: Action, keep_alive: bool) -> None:
        """A body sent in chunks ``chunk_delay`` apart (a slow download a
        client can be killed in the middle of)."""
        assert self._transport is not None
        self._transport.write(action.response)
        for index, chunk in enumerate(action.chunks):
            if index:
                await asyncio.sleep(action.chunk_delay)
            if self._transport.is_closing():
                return
            self._transport.write(chunk)
            if action.progress is not None:
                action.progress["sent"] = index + 1
        if not keep_alive:
            self._transport.close()


async def _tick_batches(core: Core) -> None:
    """Moves provider batches along (validation, answering lines, ending)."""
    while True:
        busy = core.tick_batches(time.time())
        await asyncio.sleep(0 if busy else BATCH_TICK_SECONDS)


async def _serve(core: Core, host: str, port: int, started: Any, stop: asyncio.Event) -> None:
    connections: set[_Connection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(core, connections), host, port, backlog=2048
    )
    started(server.sockets[0].getsockname()[1])
    ticker = loop.create_task(_tick_batches(core))
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        server.close()
        for connection in list(connections):
            connection.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the closed transports call connection_lost


class FakeUpstream:
    """The fake upstream served from a background thread of this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        api_key: str | None = None,
        seed: int = 0,
        log_bodies: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.core = Core(
            Settings(latency_ms=latency_ms, api_key=api_key, seed=seed, log_bodies=log_bodies)
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """Root URL (what the Anthropic backend's ``base_url`` wants)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` + ``/v1`` (what OpenAI-compatible clients want)."""
        return self.base_url + "/v1"

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"fake upstream did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await _serve(self.core, self.host, self.port, self._started, self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def _started(self, port: int) -> None:
        self.port = port
        self._ready.set()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- control (same semantics as the HTTP control endpoints)

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.core.configure(changes)

    def script(self, *faults: FaultSpec | Fault) -> None:
        """Append faults for the next calls, whatever their fingerprint."""
        with self.core._lock:
            self.core.settings.script.extend(Fault.parse(f) for f in faults)

    def script_for(self, fingerprint: str, *faults: FaultSpec | Fault) -> None:
        """Append faults for the next calls with this fingerprint."""
        with self.core._lock:
            queue = self.core.settings.by_fingerprint.setdefault(fingerprint, [])
            queue.extend(Fault.parse(f) for f in faults)

    def calls(self, fingerprint: str | None = None) -> list[dict[str, Any]]:
        return [
            c for c in self.core.calls() if fingerprint is None or c["fingerprint"] == fingerprint
        ]

    def script_route(self, kind: str, *faults: FaultSpec | Fault) -> None:
        """Append faults for the next calls of a batch API route kind
        (``batches.create``, ``files.content``, ...)."""
        if kind not in batches.ROUTE_KINDS:
            raise ValueError(f"unknown route kind {kind!r}")
        with self.core._lock:
            queue = self.core.settings.batch.route_faults.setdefault(kind, [])
            queue.extend(Fault.parse(f) for f in faults)

    def batches(self) -> dict[str, Any]:
        """Every batch (both APIs), every file, and billed lines per custom_id."""
        return self.core.batch_report()

    def batch_control(self, batch_id: str, **ops: Any) -> list[dict[str, Any]]:
        """Hold, release, progress or end a batch (``"*"``: every open one)."""
        return self.core.batch_control(batch_id, ops)

    def reset(self) -> None:
        self.core.reset()


class RemoteUpstream:
    """Control client for a fake upstream running in another process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.openai_base_url = self.base_url + "/v1"
        self._http = httpx.Client(base_url=self.base_url, timeout=10)

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = self._http.post("/_control", json=changes)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def calls(self, fingerprint: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        response = self._http.get("/_calls", params={"since": since})
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return [c for c in calls if fingerprint is None or c["fingerprint"] == fingerprint]

    def reset(self) -> None:
        self._http.post("/_reset").raise_for_status()

    def script_route(self, kind: str, *faults: FaultSpec) -> None:
        """Replace the fault script of a batch API route kind."""
        current = self._http.get("/_control").json()["route_faults"]
        current[kind] = [*current.get(kind, []), *faults]
        self.configure(route_faults=current)

    def batches(self) -> dict[str, Any]:
        response = self._http.get("/_batches")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    def batch_control(self, batch_id: str, **ops: Any) -> list[dict[str, Any]]:
        response = self._http.post(f"/_batches/{batch_id}", json=ops)
        response.raise_for_status()
        controlled: list[dict[str, Any]] = response.json()["batches"]
        return controlled

    def close(self) -> None:
        self._http.close()


@contextlib.contextmanager
def start_process(*extra_args: str, latency_ms: float = 0.0) -> Iterator[RemoteUpstream]:
    """Run ``python -m tests.fakes.upstream`` as a child process."""
    command = [
        sys.executable,
        "-m",
        "tests.fakes.upstream",
        "--port",
        "0",
        "--latency-ms",
        str(latency_ms),
        *extra_args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"fake upstream failed to start (printed {url!r})")
        remote = RemoteUpstream(url)
        try:
            yield remote
        finally:
            remote.close()
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Fake OpenAI/Anthropic upstream for tests and benchmarks"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--fault", action="append", default=[], help="fault spec for --fault-rate (repeatable)"
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-log-bodies", action="store_true", help="keep memory flat in long benchmarks"
    )
    args = parser.parse_args(argv)

    settings = Settings(
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        seed=args.seed,
        api_key=args.api_key,
        log_bodies=not args.no_log_bodies,
    )
    if args.fault:
        settings.rate_faults = [Fault.parse(spec) for spec in args.fault]
    core = Core(settings)

    def started(port: int) -> None:
        print(f"http://{args.host}:{port}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await _serve(core, args.host, args.port, started, stop)

    try:
        import uvloop
    except ImportError:  # uvloop only makes it faster
        asyncio.run(run())
    else:
        uvloop.run(run())


if __name__ == "__main__":
    main()
