"""Upstreams that fail, throttle and hang; workers that are killed or drained."""

from __future__ import annotations

import collections
import itertools
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from batchgate import config
from batchgate.domain.states import RequestState
from batchgate.store import sql
from tests import harness
from tests.e2e import processes
from tests.fakes.upstream import FakeUpstream, start_process

pytestmark = pytest.mark.slow

MODEL = "fake-chat"


def native_body(n: int, prefix: str = "question", max_tokens: int = 16) -> dict[str, Any]:
    return processes.native_batch(n, lambda i: f"{prefix} {i}", model=MODEL, max_tokens=max_tokens)


def result_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def test_faulty_upstream_every_request_succeeds_and_retries_respect_retry_after(
    tmp_path: Path,
) -> None:
    n, max_attempts = 1000, 10
    faults: list[Any] = [
        {"status": 429, "retry_after_ms": 300},
        "500",
        "502",
        "503",
        "529",
        "drop",
        {"kind": "hang", "hang_seconds": 5},
    ]
    with FakeUpstream() as upstream:
        upstream.configure(fault_rate=0.3, rate_faults=faults, seed=11, log_bodies=False)
        models = {
            MODEL: harness.openai_model(
                MODEL, upstream.openai_base_url, timeout=1.0, max_concurrency=32
            )
        }
        settings = harness.make_settings(
            tmp_path, models, max_attempts=max_attempts, backoff_max_seconds=0.5
        )
        with harness.serve_socket(settings) as server, server.client() as client:
            batch = client.post("/v1/batches", json=native_body(n)).json()
            ended = server.wait_ended(batch["id"], timeout=240)
            lines = result_lines(client.get(f"/v1/batches/{batch['id']}").text)
        calls = upstream.calls()
    assert ended["request_counts"] == {"total": n, "completed": n, "failed": 0}
    assert sorted(line["custom_id"] for line in lines) == sorted(f"req-{i}" for i in range(n))
    by_request: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for call in calls:
        by_request[call["fingerprint"]].append(call)
    assert sum(1 for c in calls if c["outcome"] != "ok") > 0.2 * len(calls)  # faults happened
    retried_429 = 0
    for request_calls in by_request.values():
        assert len(request_calls) <= max_attempts
        for this, after in itertools.pairwise(request_calls):
            if this["outcome"] == "429":
                retried_429 += 1
                assert after["t"] - this["t"] >= 0.3
    assert retried_429 > 10


def _max_in_window(times: list[float], weights: list[int], period: float) -> int:
    """The largest total weight of events in any half-open window of ``period``."""
    best, total, start = 0, 0, 0
    for end, at in enumerate(times):
        total += weights[end]
        while at - times[start] >= period:
            total -= weights[start]
            start += 1
        best = max(best, total)
    return best


@pytest.mark.parametrize(
    ("limit", "field", "n", "words"),
    [
        ({"requests_per_minute": 600}, "requests", 90, 4),
        # ~100 tokens a request, so 40 requests need several windows' worth.
        ({"tokens_per_minute": 30_000}, "tokens", 40, 50),
    ],
)
def test_upstream_never_sees_more_than_the_limit_in_any_window(
    tmp_path: Path, limit: dict[str, int], field: str, n: int, words: int
) -> None:
    period = 2.0  # 600 rpm = 20 requests, 30k tpm = 1,000 tokens in any 2 s
    prefix = " ".join(["word"] * words)
    with FakeUpstream() as upstream:
        models = {
            MODEL: harness.openai_model(
                MODEL,
                upstream.openai_base_url,
                max_concurrency=16,
                rate_period_seconds=period,
                **limit,
            )
        }
        with (
            harness.serve_socket(harness.make_settings(tmp_path, models)) as server,
            server.client() as client,
        ):
            batch = client.post("/v1/batches", json=native_body(n, prefix, max_tokens=64)).json()
            server.wait_ended(batch["id"], timeout=120)
            lines = result_lines(client.get(f"/v1/batches/{batch['id']}").text)
        calls = upstream.calls()
    assert len(lines) == n and all(x["result"]["type"] == "succeeded" for x in lines)
    times = [call["t"] for call in calls]
    if field == "requests":
        weights = [1] * len(calls)
        allowed = int(600 * period / 60)
    else:
        usage = {x["custom_id"]: x["result"]["message"]["usage"] for x in lines}
        tokens = {
            f"{prefix} {i}": usage[f"req-{i}"]["input_tokens"] + usage[f"req-{i}"]["output_tokens"]
            for i in range(n)
        }
        weights = [tokens[call["fingerprint"]] for call in calls]
        allowed = int(30_000 * period / 60)
    busiest = _max_in_window(times, weights, period)
    assert busiest <= allowed
    assert busiest >= allowed * 0.5  # the limit was actually the bottleneck


def _worker_config(tmp_path: Path, base_url: str, **worker: Any) -> Path:
    return processes.write_config(
        tmp_path / "batchgate.toml",
        {MODEL: {"backend": "openai_compatible", "base_url": base_url, "max_concurrency": 16}},
        worker={
            "lease_seconds": 2,
            "heartbeat_seconds": 0.5,
            "sweep_seconds": 0.25,
            "poll_seconds": 0.05,
            **worker,
        },
    )


# Ten rounds on SQLite (the default store); three more on PostgreSQL, where
# the two workers really claim in parallel (SKIP LOCKED).
@pytest.mark.parametrize(("database", "rounds"), [("sqlite", 10), ("postgres", 3)])
def test_chaos_killing_one_of_two_workers_loses_and_doubles_nothing(
    tmp_path: Path, database: str, rounds: int, request: pytest.FixtureRequest
) -> None:
    n = 2000
    db = request.getfixturevalue("store_url_postgres") if database == "postgres" else None
    rng = random.Random(5)
    with start_process("--no-log-bodies", latency_ms=5) as upstream:
        cfg = _worker_config(tmp_path, upstream.openai_base_url)
        port = processes.free_port()
        with (
            processes.serve(cfg, tmp_path, port, "--no-worker", database_url=db),
            processes.client(port) as http,
        ):
            workers = [processes.worker(cfg, tmp_path, f"w{i}", database_url=db) for i in range(2)]
            running = [w.__enter__() for w in workers]
            try:
                for round_number in range(rounds):
                    batch_id = http.post(
                        "/v1/batches", json=native_body(n, f"round {round_number}")
                    ).json()["id"]
                    time.sleep(rng.uniform(0.2, 1.5))
                    victim = rng.randrange(2)
                    running[victim].kill()
                    workers[victim] = processes.worker(
                        cfg, tmp_path, f"w{victim}-r{round_number}", database_url=db
                    )
                    running[victim] = workers[victim].__enter__()
                    ended = processes.wait_for(
                        http, batch_id, lambda b: b["status"] in processes.ENDED
                    )
                    lines = result_lines(http.get(f"/v1/batches/{batch_id}").text)
                    per_id = collections.Counter(line["custom_id"] for line in lines)
                    assert len(per_id) == n, f"round {round_number}: lost requests"
                    assert max(per_id.values()) == 1, f"round {round_number}: duplicates"
                    counts = ended["request_counts"]
                    assert counts["completed"] + counts["failed"] == counts["total"] == n
                    assert counts["completed"] == n
            finally:
                for process in running:
                    if process.popen.poll() is None:
                        process.kill()


def test_sigterm_drains_no_new_calls_none_left_running_exit_zero(tmp_path: Path) -> None:
    n = 200
    with start_process(latency_ms=300) as upstream:
        cfg = _worker_config(tmp_path, upstream.openai_base_url, drain_seconds=30)
        port = processes.free_port()
        with (
            processes.serve(cfg, tmp_path, port, "--no-worker"),
            processes.client(port) as http,
            processes.worker(cfg, tmp_path, "drained") as worker,
        ):
            batch_id = http.post("/v1/batches", json=native_body(n)).json()["id"]
            processes.wait_for(http, batch_id, lambda b: b["request_counts"]["completed"] >= 16)
            signalled_at = time.time()
            worker.popen.send_signal(signal.SIGTERM)
            exit_code = worker.popen.wait(60)
            finished_at = time.time()
            calls = upstream.calls()
            batch = processes.batch(http, batch_id)
    assert exit_code == 0
    # Calls already on the wire when the signal came may arrive a moment later.
    late = [c for c in calls if c["t"] > signalled_at + 0.1]
    assert late == []
    assert finished_at - signalled_at < 5  # in-flight calls finished; no waiting on leases
    store = sql.SqlJobStore.open(config.Settings(data_dir=tmp_path).resolved_database_url())
    try:
        tally = store.tally(batch_id)
    finally:
        store.close()
    assert tally.count(RequestState.RUNNING) == 0
    assert tally.count(RequestState.SUCCEEDED) == batch["request_counts"]["completed"] < n


@pytest.mark.parametrize("same_key", [False, True])
def test_small_batch_submitted_after_a_big_one_finishes_first(
    tmp_path: Path, same_key: bool
) -> None:
    with FakeUpstream(latency_ms=20) as upstream:
        upstream.configure(log_bodies=False)
        models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url, max_concurrency=16)}
        with harness.serve_socket(harness.make_settings(tmp_path, models)) as server:
            with server.client() as client:
                big = client.post("/v1/batches", json=native_body(5000, "big")).json()
            other_key = server.api_key if same_key else server.new_key("small-batch-owner")
            with server.client(other_key) as client:
                submitted = time.monotonic()
                small = client.post("/v1/batches", json=native_body(10, "small")).json()
            ended = server.wait_ended(small["id"], timeout=30, api_key=other_key)
            small_seconds = time.monotonic() - submitted
            with server.client(accept="application/json") as client:
                big_now = client.get(f"/v1/batches/{big['id']}").json()
    assert ended["request_counts"]["completed"] == 10
    assert small_seconds < 3
    assert big_now["status"] == "in_progress"  # the big one was still running


def test_down_upstream_keeps_requests_queued_without_burning_attempts(tmp_path: Path) -> None:
    n, max_attempts = 20, 3
    with FakeUpstream() as upstream:
        upstream.configure(fault_rate=1.0, rate_faults=["503"])
        models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url, max_concurrency=4)}
        settings = harness.make_settings(tmp_path, models, max_attempts=max_attempts)
        with harness.serve_socket(settings) as server, server.client() as client:
            batch = client.post("/v1/batches", json=native_body(n)).json()
            time.sleep(4)  # down long enough to use up every attempt in a tight loop
            down_calls = len(upstream.calls())
            upstream.configure(fault_rate=0.0)
            ended = server.wait_ended(batch["id"], timeout=90)
    assert ended["request_counts"] == {"total": n, "completed": n, "failed": 0}
    # A tight retry loop would have made n * max_attempts calls by now.
    assert down_calls < n


def test_window_ending_while_upstream_is_down_expires_the_rest(tmp_path: Path) -> None:
    n = 10
    with FakeUpstream() as upstream:
        upstream.configure(fault_rate=1.0, rate_faults=["503"])
        models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url, max_concurrency=2)}
        settings = harness.make_settings(tmp_path, models)
        settings.completion_window_seconds = 2
        with harness.serve_socket(settings) as server, server.client() as client:
            batch = client.post("/v1/batches", json=native_body(n)).json()
            ended = server.wait_ended(batch["id"], timeout=30)
            lines = result_lines(client.get(f"/v1/batches/{batch['id']}").text)
    assert ended["status"] == "expired"
    assert ended["request_counts"] == {"total": n, "completed": 0, "failed": n}
    assert [line["result"]["type"] for line in lines] == ["expired"] * n
