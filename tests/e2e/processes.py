"""Real batchgate processes for end-to-end tests: ``batchgate serve`` and
``batchgate worker`` as child processes on a config file the test writes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from batchgate.domain import states
from tests import harness

API_KEY = "bg-e2e-key-0123456789abcdef"
ENDED = {status.value for status in states.ENDED_BATCH_STATUSES}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def native_batch(
    n: int,
    content: Callable[[int], str],
    *,
    model: str,
    id_prefix: str = "req-",
    max_tokens: int = 16,
) -> dict[str, Any]:
    """A native batch body of ``n`` one-message chat requests, request ``i``
    saying ``content(i)`` under the custom_id ``{id_prefix}{i}``."""
    return {
        "requests": [
            {
                "custom_id": f"{id_prefix}{i}",
                "params": {
                    "model": model,
                    "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": content(i)}],
                },
            }
            for i in range(n)
        ]
    }


def write_config(
    path: Path,
    models: dict[str, dict[str, Any]],
    worker: dict[str, Any] | None = None,
    tables: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A TOML config (written by hand: the values here are simple);
    ``tables`` are further sections, e.g. ``{"webhooks": {...}}``."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    lines = ["[worker]"] + [f"{k} = {value(v)}" for k, v in (worker or {}).items()]
    for table, entries in (tables or {}).items():
        lines.append(f"\n[{table}]")
        lines += [f"{k} = {value(v)}" for k, v in entries.items()]
    for name, entry in models.items():
        lines.append(f'\n[models."{name}"]')
        lines += [f"{k} = {value(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Process:
    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.popen = popen
        self.log = log

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    handle = log.open("ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "batchgate.cli", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    handle.close()
    return Process(popen, log)


@contextlib.contextmanager
def serve(
    config: Path, data_dir: Path, port: int, *extra: str, database_url: str | None = None
) -> Iterator[Process]:
    args = [
        "serve",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--log-level",
        "warning",
        *extra,
    ]
    if database_url:
        args += ["--database-url", database_url]
    process = _spawn(args, data_dir / f"serve-{port}.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        yield process
    finally:
        if process.popen.poll() is None:
            process.kill()


@contextlib.contextmanager
def worker(
    config: Path, data_dir: Path, name: str, *extra: str, database_url: str | None = None
) -> Iterator[Process]:
    args = ["worker", "--config", str(config), "--data-dir", str(data_dir), *extra]
    if database_url:
        args += ["--database-url", database_url]
    process = _spawn(args, data_dir / f"worker-{name}.log")
    try:
        yield process
    finally:
        if process.popen.poll() is None:
            process.kill()


def answers(url: str) -> bool:
    """Whether something at ``url`` answers /health with a 200."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    return False


def wait_healthy(url: str, process: Process, timeout: float = 60) -> None:
    def healthy() -> bool:
        if process.popen.poll() is not None:
            raise RuntimeError(f"server exited early:\n{process.output()}")
        return answers(url)

    try:
        harness.wait_until(healthy, timeout, f"{url} to be healthy", every=0.1)
    except TimeoutError as exc:
        raise TimeoutError(f"server not healthy:\n{process.output()}") from exc


def client(port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=60,
        headers={"authorization": f"Bearer {API_KEY}"},
    )


def batch(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(
        f"/v1/batches/{batch_id}", headers={"accept": "application/json"}
    ).json()
    return body


def wait_for(
    http: httpx.Client, batch_id: str, predicate: Any, timeout: float = 120
) -> dict[str, Any]:
    def matching() -> dict[str, Any] | None:
        current = batch(http, batch_id)
        return current if predicate(current) else None

    return harness.wait_until(matching, timeout, f"batch {batch_id}", every=0.1)
