"""What an operator sees of a running `batchgate serve`: JSON logs that trace
each request, the status table, and /metrics on its own keyless listener."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import harness
from tests.e2e import processes
from tests.fakes.upstream import RemoteUpstream, start_process

pytestmark = pytest.mark.slow

MODEL = "fake-chat"
SECRET_PROMPT = "the secret prompt text"


@pytest.fixture
def upstream() -> Iterator[RemoteUpstream]:
    with start_process() as remote:
        yield remote


def config(tmp_path: Path, upstream: RemoteUpstream, **sections: dict[str, Any]) -> Path:
    return processes.write_config(
        tmp_path / "batchgate.toml",
        {MODEL: {"backend": "openai_compatible", "base_url": upstream.openai_base_url}},
        worker={"poll_seconds": 0.05, "backoff_base_seconds": 0.05, "heartbeat_seconds": 0.3},
        tables=sections,
    )


def native_body(n: int) -> dict[str, Any]:
    return processes.native_batch(
        n, lambda i: f"{SECRET_PROMPT} {i}", model=MODEL, id_prefix="c", max_tokens=8
    )


def test_json_logs_trace_each_request_by_batch_and_custom_id_without_prompts_or_keys(
    tmp_path: Path, upstream: RemoteUpstream
) -> None:
    upstream.configure(by_fingerprint={f"{SECRET_PROMPT} 1": ["503"]})
    port = processes.free_port()
    with (
        processes.serve(
            config(tmp_path, upstream),
            tmp_path,
            port,
            "--log-format",
            "json",
            "--log-level",
            "info",
        ) as server,
        processes.client(port) as http,
    ):
        batch_id = http.post("/v1/batches", json=native_body(3)).json()["id"]
        processes.wait_for(http, batch_id, lambda b: b["status"] == "completed")
        time.sleep(0.5)  # let the last lines reach the log
        output = server.output()
    lines = [line for line in output.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    trace = [
        (r["event"], r.get("attempt"), r.get("cause"))
        for r in records
        if r.get("batch_id") == batch_id and r.get("custom_id") == "c1"
    ]
    assert trace == [
        ("claimed", 1, None),
        ("retried", 1, "http_503"),
        ("claimed", 2, None),
        ("succeeded", 2, None),
    ]
    events = {r.get("event") for r in records if r.get("batch_id") == batch_id}
    assert {"batch_created", "batch_ended"} <= events
    assert SECRET_PROMPT not in output
    assert processes.API_KEY not in output


def batchgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchgate.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160", **env},
    )


def test_status_without_an_id_shows_the_callers_batches_with_progress(
    tmp_path: Path, upstream: RemoteUpstream
) -> None:
    port = processes.free_port()
    env = {"BATCHGATE_URL": f"http://127.0.0.1:{port}", "BATCHGATE_API_KEY": processes.API_KEY}
    with (
        processes.serve(config(tmp_path, upstream), tmp_path, port),
        processes.client(port) as http,
    ):
        done = http.post("/v1/batches", json=native_body(4)).json()["id"]
        processes.wait_for(http, done, lambda b: b["status"] == "completed")
        messages = http.post("/v1/messages/batches", json=native_body(3)).json()["id"]
        harness.wait_until(
            lambda: (
                http.get(f"/v1/messages/batches/{messages}").json()["processing_status"] == "ended"
            ),
            60,
            "the Anthropic batch to end",
            every=0.1,
        )
        upstream.configure(latency_ms=60_000)  # the next batch cannot finish
        running = http.post("/v1/batches", json=native_body(2)).json()["id"]
        other_key = batchgate(
            "keys",
            "create",
            "--name",
            "other",
            "--config",
            str(tmp_path / "batchgate.toml"),
            "--data-dir",
            str(tmp_path),
            env={},
        ).stdout.splitlines()[-1]
        mine = batchgate("status", env=env)
        theirs = batchgate("status", env={**env, "BATCHGATE_API_KEY": other_key})
        http.post(f"/v1/batches/{running}/cancel")
    assert mine.returncode == 0, mine.stderr
    rows = {line.split()[1]: line for line in mine.stdout.splitlines() if "batch_" in line}
    assert set(rows) == {done, messages, running}
    assert re.search(r"completed .* 4/4", rows[done])
    # An Anthropic batch shows as Anthropic says, with the cost the store has.
    assert re.search(r"ended .* 3/3 .* \d+\.\d{4}\s*.$", rows[messages])
    assert re.search(r"in_progress .* 0/2", rows[running])
    assert mine.stdout.index(running) < mine.stdout.index(messages) < mine.stdout.index(done)
    assert theirs.returncode == 0 and "no batches yet" in theirs.stdout


def test_metrics_port_serves_without_a_key_on_its_own_address(
    tmp_path: Path, upstream: RemoteUpstream
) -> None:
    port = processes.free_port()
    cfg = config(tmp_path, upstream, metrics={"port": 0, "host": "127.0.0.1"})
    with processes.serve(cfg, tmp_path, port) as server:
        match = harness.wait_until(
            lambda: re.search(r"metrics on (http://\S+/metrics)", server.output()),
            30,
            "the metrics listener's log line",
            every=0.1,
        )
        keyless = httpx.get(match.group(1), timeout=10)
        on_api_port = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert keyless.status_code == 200 and "batchgate_workers_alive" in keyless.text
    assert on_api_port.status_code == 401


def test_a_worker_beside_serve_leaves_the_metrics_port_to_it(
    tmp_path: Path, upstream: RemoteUpstream
) -> None:
    """One config, one host: `serve --no-worker` holds `[metrics] port`; a
    `batchgate worker` started with the same file does not try to bind it
    (it used to die with 'address in use') and runs the batch."""
    port, metrics_port = processes.free_port(), processes.free_port()
    cfg = config(tmp_path, upstream, metrics={"port": metrics_port, "host": "127.0.0.1"})
    with (
        processes.serve(cfg, tmp_path, port, "--no-worker"),
        processes.worker(cfg, tmp_path, "a") as worker,
        processes.client(port) as http,
    ):
        batch_id = http.post("/v1/batches", json=native_body(2)).json()["id"]
        processes.wait_for(http, batch_id, lambda b: b["status"] == "completed")
        keyless = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert worker.popen.poll() is None, worker.output()
    assert keyless.status_code == 200 and "batchgate_workers_alive 1.0" in keyless.text
