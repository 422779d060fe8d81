"""A scriptable fake LLM upstream: a real HTTP server on 127.0.0.1.

Speaks ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/responses``
and ``/v1/embeddings`` (OpenAI shapes) and ``POST /v1/messages`` (Anthropic
shape); what it answers is described in :mod:`tests.fakes.upstream_replies`
and :mod:`tests.fakes.upstream_endpoints`. It can inject faults and keeps a call log,
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
* ``POST /_reset``: clear the log, scripts and counters; settings go back to
  the ones the server started with.

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
import dataclasses
import email.utils
import http
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import httptools
import httpx
import orjson

from tests.fakes import upstream_endpoints as endpoints
from tests.fakes import upstream_replies as replies

FaultSpec = str | int | dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str  # "ok" | "status" | "hang" | "drop"
    status: int = 200
    retry_after: float | None = None
    retry_after_ms: float | None = None
    retry_after_date: float | None = None
    message: str | None = None
    hang_seconds: float = 300.0

    @classmethod
    def parse(cls, spec: FaultSpec | Fault) -> Fault:
        if isinstance(spec, Fault):
            return spec
        if isinstance(spec, int):
            return cls(kind="status", status=spec)
        if isinstance(spec, str):
            if spec in ("ok", "hang", "drop"):
                return cls(kind=spec)
            status, _, after = spec.partition(":")
            return cls(
                kind="status", status=int(status), retry_after=float(after) if after else None
            )
        fields = dict(spec)
        kind = fields.pop("kind", "status" if "status" in fields else "ok")
        return cls(kind=kind, **fields)

    def label(self) -> str:
        return str(self.status) if self.kind == "status" else self.kind

    def headers(self) -> list[tuple[str, str]]:
        out = []
        if self.retry_after is not None:
            value = self.retry_after
            out.append(("retry-after", str(int(value)) if value == int(value) else str(value)))
        if self.retry_after_date is not None:
            date = email.utils.formatdate(time.time() + self.retry_after_date, usegmt=True)
            out.append(("retry-after", date))
        if self.retry_after_ms is not None:
            out.append(("retry-after-ms", str(self.retry_after_ms)))
        return out


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
            else:
                raise ValueError(f"unknown setting {key!r}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


@dataclasses.dataclass
class Action:
    """What to do with one request: wait ``delay`` seconds, then send
    ``response`` (bytes), or drop the connection, or hang."""

    delay: float
    kind: str  # "respond" | "drop" | "hang"
    response: bytes = b""
    hang_seconds: float = 0.0


def _reason(status: int) -> str:
    if status == 529:
        return "Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _http_response(
    status: int, payload: Any, keep_alive: bool, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    body = orjson.dumps(payload)
    lines = [
        f"HTTP/1.1 {status} {_reason(status)}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


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
        self.settings = dataclasses.replace(
            self._initial,
            rate_faults=list(self._initial.rate_faults),
            script=list(self._initial.script),
            by_fingerprint={k: list(v) for k, v in self._initial.by_fingerprint.items()},
        )
        self.log: list[dict[str, Any]] = []
        self._attempts: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(self.settings.seed)

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
        self._attempts[fingerprint] += 1
        entry: dict[str, Any] = {
            "seq": len(self.log) + 1,
            "t": arrived,
            "path": path,
            "fingerprint": fingerprint,
            "attempt": self._attempts[fingerprint],
            "headers": dict(headers),
            "body": parsed if settings.log_bodies else None,
        }
        self.log.append(entry)
        error = replies.anthropic_error if anthropic else replies.openai_error
        delay = settings.latency_ms / 1000.0

        if not self._authorized(anthropic, headers):
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

    def _authorized(self, anthropic: bool, headers: dict[str, str]) -> bool:
        key = self.settings.api_key
        if key is None:
            return True
        if anthropic:
            return (
                headers.get("x-api-key") == key or headers.get("authorization") == f"Bearer {key}"
            )
        return headers.get("authorization") == f"Bearer {key}"

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
        except (ValueError, TypeError) as exc:
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
            if action.delay > 0 or action.kind == "hang":
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
        self._task = None
        self._act(action, keep_alive)
        self._drain()


async def _serve(core: Core, host: str, port: int, started: Any, stop: asyncio.Event) -> None:
    connections: set[_Connection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(core, connections), host, port, backlog=2048
    )
    started(server.sockets[0].getsockname()[1])
    try:
        await stop.wait()
    finally:
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
