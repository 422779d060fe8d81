"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that logs
every delivery it gets (raw headers and body) and can be told to fail or hold.

    with WebhookReceiver() as receiver:
        receiver.fail_first(3)          # each webhook-id: 503 three times, then 200
        ... register receiver.url as a webhook endpoint ...
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 4)

``hold()`` makes it take requests and not answer until ``release()``: the
sender sits mid-delivery, the state a crash test needs.
"""

from __future__ import annotations

import collections
import dataclasses
import http.server
import threading
from collections.abc import Callable
from typing import Any

import orjson

from tests import harness


@dataclasses.dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered (0: never answered, held)

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


class WebhookReceiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[Received] = []
        self._seen: collections.Counter[str] = collections.Counter()
        self._fail_first = 0
        self._held = threading.Event()
        self._release = threading.Event()
        self._release.set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._decide(headers.get("webhook-id", ""))
                if status == 0:
                    receiver._log_one(headers, body, 0)
                    receiver._release.wait(120)
                    self.close_connection = True
                    return
                receiver._log_one(headers, body, status)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever checks for shutdown every poll_interval (0.5 s by
        # default): each test that used a receiver waited that long to stop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    # -- behaviour --------------------------------------------------------------
    def fail_first(self, n: int) -> None:
        """Answer 503 to the first ``n`` attempts of every webhook-id."""
        self._fail_first = n

    def hold(self) -> None:
        """Take requests and answer none until :meth:`release`."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def _decide(self, webhook_id: str) -> int:
        with self._lock:
            self._seen[webhook_id] += 1
            if not self._release.is_set():
                return 0
            return 503 if self._seen[webhook_id] <= self._fail_first else 200

    def _log_one(self, headers: dict[str, str], body: bytes, status: int) -> None:
        with self._lock:
            self._log.append(Received(headers.get("webhook-id", ""), headers, body, status))

    # -- what arrived -------------------------------------------------------------
    def received(self) -> list[Received]:
        """Every delivery that arrived, raw, in arrival order."""
        with self._lock:
            return list(self._log)

    def events(self) -> dict[str, Received]:
        """Deduplicated by webhook-id, as a receiver should: the first copy
        of each message."""
        unique: dict[str, Received] = {}
        for item in self.received():
            unique.setdefault(item.webhook_id, item)
        return unique

    def accepted_ids(self) -> set[str]:
        return {item.webhook_id for item in self.received() if item.status == 200}

    def wait_for(self, predicate: Callable[[WebhookReceiver], bool], timeout: float = 30.0) -> None:
        harness.wait_until(lambda: predicate(self), timeout, "the deliveries expected")
