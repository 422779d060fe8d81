"""Memory under abuse (issue 16): a served batchgate keeps its memory while
clients without a key push large bodies at it and a key floods /v1/files
with form fields, and an honest key's calls stay fast meanwhile.

One `batchgate serve` (API and worker in one process) in front of the fake
upstream (5 ms a call). Three kinds of client:

- *honest*: one key that submits a native batch of ``--requests`` requests,
  polls it until it ends, reads its results and lists its batches, over and
  over; every call is timed (the polling sleeps are not);
- *keyless* (``--keyless``, 20): each sends ``--body-mb`` (100 MB) chunked,
  with no key, round-robin over every route that takes a body, and starts
  again once answered;
- *field floods* (``--floods``, 20): each sends, with a valid key, a chunked
  multipart body of 7,000 form fields of 60 KB (420 MB) to /v1/files, and
  starts again once answered.

Attackers use raw sockets so they push bytes as fast as the server takes
them, and stop only when it answers or hangs up. The honest key runs
``--rounds`` batches alone (the peer), then the same beside the attack.
Prints the server's idle RSS and its peak during the attack (goal: growth
under 100 MiB), how much each attacker got the server to take, and the
honest key's call latency and batch turnaround beside the attack against
alone (ratio; 1.0 = no slowdown).

Run from the repository root:
    .venv/bin/python benchmarks/abuse.py [--keyless 20] [--floods 20] [--body-mb 100]
"""

from __future__ import annotations

import argparse
import collections
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rss_sampler import RssSampler
from tests.e2e import processes
from tests.fakes.upstream import start_process

MODEL = "bench"
MIB = 1024 * 1024
_CHUNK = b"x" * (64 * 1024)
# Every route that takes a body, with what its clients send.
KEYLESS_ROUTES = [
    ("/v1/batches", "application/json"),
    ("/v1/messages/batches", "application/json"),
    ("/v1/webhook_endpoints", "application/json"),
    ("/v1/keys", "application/json"),
    ("/v1/batches/batch_abuse/retry", "application/json"),
    ("/v1/files", "multipart/form-data; boundary=b"),
]


# -- attackers -----------------------------------------------------------------
def _frame(data: bytes) -> bytes:
    """One chunk of a chunked transfer encoding."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _field(n: int, value: bytes) -> bytes:
    return f'--b\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\n'.encode() + value + b"\r\n"


class Attacker:
    """Sends one kind of oversized body, again and again, until stopped;
    counts the bytes the server took and the answers it gave."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        self.port = port
        self.stop = stop
        self.sent = 0  # bytes the server's socket accepted, over every attempt
        self.attempts = 0
        self.answers: collections.Counter[str] = collections.Counter()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def request(self) -> tuple[bytes, Iterator[bytes]]:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stop.is_set():
            self.attempts += 1
            self.answers[self.once()] += 1

    def once(self) -> str:
        head, frames = self.request()
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        except OSError as exc:
            return f"connect failed: {type(exc).__name__}"
        with sock:
            sock.sendall(head)
            return self._push(sock, frames)

    def _push(self, sock: socket.socket, frames: Iterator[bytes]) -> str:
        """Send frames while the server takes them; stop at its answer, its
        hang-up, or 30 s without progress."""
        pending = b""
        while not self.stop.is_set():
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                return _status(sock)
            if not writable:
                return "stalled 30 s"
            if not pending:
                pending = next(frames, b"")
                if not pending:
                    return _status(sock)  # the whole body went: read the answer
            try:
                taken = sock.send(pending)
            except OSError as exc:
                return f"closed: {type(exc).__name__}"
            self.sent += taken
            pending = pending[taken:]
        return "stopped"


def _status(sock: socket.socket) -> str:
    sock.settimeout(30)
    try:
        first = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as exc:
        return f"closed: {type(exc).__name__}"
    return first.split(" ", 2)[1] if first.startswith("HTTP/") else "closed"


class Keyless(Attacker):
    """``body_mb`` MB chunked to a route that takes a body, with no key."""

    def __init__(self, port: int, stop: threading.Event, route: int, body_mb: int) -> None:
        super().__init__(port, stop)
        self.path, self.content_type = KEYLESS_ROUTES[route % len(KEYLESS_ROUTES)]
        self.chunks = body_mb * 1024 * 1024 // len(_CHUNK)

    def request(self) -> tuple[bytes, Iterator[bytes]]:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: abuse\r\n"
            f"Content-Type: {self.content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        return head, self._frames()

    def _frames(self) -> Iterator[bytes]:
        frame = _frame(_CHUNK)
        for _ in range(self.chunks):
            yield frame
        yield b"0\r\n\r\n"


class FieldFlood(Attacker):
    """7,000 form fields of 60 KB, chunked, to /v1/files with a valid key."""

    def __init__(self, port: int, stop: threading.Event, key: str) -> None:
        super().__init__(port, stop)
        self.key = key

    def request(self) -> tuple[bytes, Iterator[bytes]]:
        head = (
            "POST /v1/files HTTP/1.1\r\nHost: abuse\r\n"
            f"Authorization: Bearer {self.key}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        return head, self._frames()

    @staticmethod
    def _frames() -> Iterator[bytes]:
        value = b"v" * 60_000
        for n in range(7000):
            yield _frame(_field(n, value))
        yield _frame(b"--b--\r\n")
        yield b"0\r\n\r\n"


# -- the honest key ----------------------------------------------------------------
def _batch_body(n: int, tag: str) -> bytes:
    return orjson.dumps(
        processes.native_batch(
            n, lambda i: f"say something short ({i})", model=MODEL, id_prefix=f"{tag}-"
        )
    )


class Honest:
    """One key's batches, submitted, polled and read; each call timed."""

    def __init__(self, port: int, key: str, requests: int) -> None:
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        self.requests = requests

    def call(self, latencies: list[float], method: str, path: str, **kw: Any) -> httpx.Response:
        started = time.perf_counter()
        response = self.http.request(method, path, **kw)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        return response

    def round(self, tag: str, latencies: list[float]) -> float:
        """Submit, poll until ended, read the results: the turnaround in s."""
        started = time.perf_counter()
        body = _batch_body(self.requests, tag)
        batch_id = self.call(latencies, "POST", "/v1/batches", content=body).json()["id"]
        accept = {"accept": "application/json"}
        while True:
            batch = self.call(latencies, "GET", f"/v1/batches/{batch_id}", headers=accept)
            if batch.json()["status"] in processes.ENDED:
                break
            time.sleep(0.05)
        lines = self.call(latencies, "GET", f"/v1/batches/{batch_id}").text.splitlines()
        if len(lines) != self.requests:
            raise RuntimeError(f"batch {batch_id}: {len(lines)} result lines")
        self.call(latencies, "GET", "/v1/batches", params={"limit": 20})
        return time.perf_counter() - started


def _summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def _make_key(admin: httpx.Client, name: str) -> str:
    response = admin.post("/v1/keys", json={"name": name})
    response.raise_for_status()
    secret: str = response.json()["value"]
    return secret


def _attack(port: int, args: argparse.Namespace, flood_key: str) -> list[Attacker]:
    stop = threading.Event()
    attackers: list[Attacker] = [Keyless(port, stop, n, args.body_mb) for n in range(args.keyless)]
    attackers += [FieldFlood(port, stop, flood_key) for _ in range(args.floods)]
    return attackers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keyless", type=int, default=20)
    parser.add_argument("--floods", type=int, default=20)
    parser.add_argument("--body-mb", type=int, default=100)
    parser.add_argument("--requests", type=int, default=20, help="requests per honest batch")
    parser.add_argument("--rounds", type=int, default=10, help="honest batches per phase")
    args = parser.parse_args()
    with (
        start_process("--no-log-bodies", latency_ms=5) as upstream,
        tempfile.TemporaryDirectory() as tmp,
    ):
        data = Path(tmp)
        model = {"backend": "openai_compatible", "base_url": upstream.openai_base_url}
        cfg = processes.write_config(
            data / "batchgate.toml", {MODEL: model}, worker={"poll_seconds": 0.05}
        )
        port = processes.free_port()
        with processes.serve(cfg, data, port) as server, processes.client(port) as admin:
            honest = Honest(port, _make_key(admin, "honest"), args.requests)
            flood_key = _make_key(admin, "flood")
            honest.round("warm-up", [])
            alone: list[float] = []
            alone_turnaround = [honest.round(f"alone{n}", alone) for n in range(args.rounds)]
            attackers = _attack(port, args, flood_key)
            with RssSampler(server.popen.pid, interval=0.01) as rss:
                idle = rss.peak
                for attacker in attackers:
                    attacker.thread.start()
                time.sleep(2)  # every attacker is pushing before the honest key starts
                beside: list[float] = []
                beside_turnaround = [honest.round(f"beside{n}", beside) for n in range(args.rounds)]
                attackers[0].stop.set()
                for attacker in attackers:
                    attacker.thread.join(60)
            honest.http.close()
            _report(args, idle, rss.peak, attackers, (alone, beside))
            _report_turnaround(alone_turnaround, beside_turnaround)


def _report(
    args: argparse.Namespace,
    idle: int,
    peak: int,
    attackers: list[Attacker],
    latencies: tuple[list[float], list[float]],
) -> None:
    growth = (peak - idle) / MIB
    verdict = "ok" if growth < 100 else "OVER"
    print(
        f"attack: {args.keyless} keyless clients x {args.body_mb} MB chunked, "
        f"{args.floods} field floods (7,000 x 60 KB) with a valid key"
    )
    print(
        f"server RSS: idle {idle / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, "
        f"growth {growth:.0f} MiB (goal < 100 MiB: {verdict})"
    )
    for kind in (Keyless, FieldFlood):
        mine = [a for a in attackers if isinstance(a, kind)]
        if not mine:
            continue
        answers: collections.Counter[str] = collections.Counter()
        for attacker in mine:
            answers.update(attacker.answers)
        attempts = sum(a.attempts for a in mine)
        sent = sum(a.sent for a in mine) / max(1, attempts)
        print(
            f"{kind.__name__:>10}: {attempts} attempts, {sent / MIB:.2f} MiB sent into each "
            f"before its answer (on average; the loopback's socket buffers hold a few MiB "
            f"the server never reads); answers {dict(answers)}"
        )
    (alone, beside) = latencies
    a_median, a_p95 = _summary(alone)
    b_median, b_p95 = _summary(beside)
    print(
        f"honest call latency alone:  median {a_median * 1000:.1f} ms, p95 {a_p95 * 1000:.1f} ms "
        f"({len(alone)} calls)"
    )
    print(
        f"honest call latency beside: median {b_median * 1000:.1f} ms, p95 {b_p95 * 1000:.1f} ms "
        f"({len(beside)} calls)"
    )
    print(f"ratio beside/alone: median {b_median / a_median:.2f}, p95 {b_p95 / a_p95:.2f}")


def _report_turnaround(alone: list[float], beside: list[float]) -> None:
    a, b = statistics.median(alone), statistics.median(beside)
    print(
        f"honest batch turnaround (submit -> results read), median: alone {a:.2f} s, "
        f"beside {b:.2f} s, ratio {b / a:.2f}"
    )


if __name__ == "__main__":
    main()
