"""/metrics of a real deployment: the API and two `batchgate worker` processes
on one PostgreSQL, a batch on the fake upstream (real HTTP) that fails now
and then; what the scrape says must add up to the batch's own counts."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import parser

from batchgate.store import sql
from tests import harness
from tests.e2e import processes
from tests.fakes.upstream import start_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MODEL = "fake-chat"
N = 400
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    found: Samples = {}
    for family in parser.text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    return sum(
        value for series, value in found.get(name, {}).items() if set(labels.items()) <= set(series)
    )


def wait_for_workers(http: httpx.Client, n: int, timeout: float = 60) -> None:
    """Until /ready counts ``n`` live workers (a process takes a while to start)."""
    harness.wait_until(
        lambda: http.get("/ready").json()["checks"].get("workers", {}).get("alive") == n,
        timeout,
        f"{n} live workers on /ready",
        every=0.1,
    )


def body(n: int) -> dict[str, Any]:
    return processes.native_batch(n, lambda i: f"question {i}", model=MODEL)


def test_metrics_of_two_workers_on_postgres_add_up_to_the_batch(
    tmp_path: Path, store_url_postgres: str
) -> None:
    db = store_url_postgres
    with start_process("--no-log-bodies", latency_ms=40) as upstream:
        upstream.configure(fault_rate=0.1, rate_faults=["503", "429"], seed=7)
        cfg = processes.write_config(
            tmp_path / "batchgate.toml",
            {
                MODEL: {
                    "backend": "openai_compatible",
                    "base_url": upstream.openai_base_url,
                    "max_concurrency": 4,
                    "price": {"input": 1.0, "output": 3.0},
                }
            },
            worker={
                "poll_seconds": 0.05,
                "heartbeat_seconds": 0.3,
                "backoff_base_seconds": 0.05,
                "backoff_max_seconds": 0.2,
                "max_attempts": 10,
            },
        )
        port = processes.free_port()
        with (
            processes.serve(cfg, tmp_path, port, "--no-worker", database_url=db),
            processes.worker(cfg, tmp_path, "a", database_url=db),
            processes.worker(cfg, tmp_path, "b", database_url=db),
            processes.client(port) as http,
        ):
            wait_for_workers(http, 2)
            batch_id = http.post("/v1/batches", json=body(N)).json()["id"]

            # During the batch: requests are queued and in flight, and both
            # workers are heartbeating. In-flight is caught at some scrape
            # (each one is a moment; over the batch's run there are many).
            processes.wait_for(
                http, batch_id, lambda b: 0 < b["request_counts"]["completed"] < N // 2
            )
            during = scrape(http)
            assert total(during, "batchgate_queue_depth", model=MODEL) > 0
            assert total(during, "batchgate_batches", status="in_progress") == 1
            assert total(during, "batchgate_workers_alive") == 2
            assert len(during["batchgate_worker_last_heartbeat_timestamp_seconds"]) == 2
            in_flight_seen = total(during, "batchgate_in_flight_requests", model=MODEL)
            while not in_flight_seen:
                batch = http.get(f"/v1/batches/{batch_id}").json()
                if batch["status"] in processes.ENDED:
                    break
                in_flight_seen = total(scrape(http), "batchgate_in_flight_requests", model=MODEL)
            assert in_flight_seen > 0

            ended = processes.wait_for(http, batch_id, lambda b: b["status"] in processes.ENDED)
            counts = ended["request_counts"]

            def reported() -> float:
                return total(scrape(http), "batchgate_attempts_total", outcome="succeeded")

            # Worker counters arrive with the next heartbeat; the asserts
            # below say what was missing if they never do.
            with contextlib.suppress(TimeoutError):
                harness.wait_until(
                    lambda: reported() == counts["completed"], 10, "the counters", every=0.1
                )
            after = scrape(http)
            calls = upstream.calls()

        assert ended["status"] == "completed" and counts["total"] == N
        # Each request's end is counted once, by the worker whose write
        # took (nothing cancelled or expired here, so these are all of them).
        succeeded = total(after, "batchgate_attempts_total", outcome="succeeded")
        errored = total(after, "batchgate_attempts_total", outcome="errored")
        assert succeeded == counts["completed"]
        assert errored == counts["failed"]
        assert total(after, "batchgate_queue_depth", model=MODEL) == 0
        assert total(after, "batchgate_in_flight_requests", model=MODEL) == 0

        faults = [call for call in calls if call["outcome"] != "ok"]
        assert faults, "the fake upstream injected no fault: the retry figures prove nothing"
        assert total(after, "batchgate_retries_total") == len(faults)
        assert total(after, "batchgate_attempts_total", outcome="retried") == len(faults)
        for status in ("503", "429"):
            assert total(after, "batchgate_retries_total", cause=f"http_{status}") == len(
                [call for call in faults if call["outcome"] == status]
            )
        assert total(after, "batchgate_upstream_latency_seconds_count") == len(calls)
        assert (
            total(after, "batchgate_tokens_total", direction="input")
            == (ended["usage"]["input_tokens"])
        )
        assert (
            total(after, "batchgate_tokens_total", direction="output")
            == (ended["usage"]["output_tokens"])
        )
        assert total(after, "batchgate_cost_usd_total") == pytest.approx(ended["cost"])
        assert total(after, "batchgate_batches", status="completed") == 1

        # Both worker processes did part of the work (each reported its own).
        store = sql.SqlJobStore.open(db, migrate=False)
        try:
            per_worker = [
                sum(
                    value
                    for name, labels, value in worker.stats["batchgate_attempts"]["samples"]
                    if labels.get("outcome") == "succeeded"
                )
                for worker in store.list_workers()
                if worker.stats
            ]
        finally:
            store.close()
        assert len(per_worker) == 2 and all(done > 0 for done in per_worker)
        assert sum(per_worker) == counts["completed"]
