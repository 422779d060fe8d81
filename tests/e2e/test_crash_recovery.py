"""SIGKILL in the middle of a batch: nothing lost, nothing doubled."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from tests.e2e import processes
from tests.fakes.upstream import start_process

pytestmark = pytest.mark.slow

MODEL = "fake-chat"


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_serve_killed_mid_batch_completes_after_restart_with_one_line_per_request(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    database_url = None
    if database == "postgres":
        database_url = request.getfixturevalue("store_url_postgres")
    n = 500
    with start_process("--no-log-bodies", latency_ms=50) as upstream:
        config = processes.write_config(
            tmp_path / "batchgate.toml",
            {
                MODEL: {
                    "backend": "openai_compatible",
                    "base_url": upstream.openai_base_url,
                    "max_concurrency": 16,
                }
            },
            # Short leases so the restarted server reclaims the dead one's
            # requests within the test's patience.
            worker={
                "lease_seconds": 2,
                "heartbeat_seconds": 0.5,
                "sweep_seconds": 0.25,
                "poll_seconds": 0.05,
            },
        )
        port = processes.free_port()
        body = processes.native_batch(n, lambda i: f"question {i}", model=MODEL)
        with (
            processes.serve(config, tmp_path, port, database_url=database_url) as server,
            processes.client(port) as http,
        ):
            batch_id = http.post("/v1/batches", json=body).json()["id"]
            at_kill = processes.wait_for(
                http, batch_id, lambda b: b["request_counts"]["completed"] >= 100
            )
            server.kill()
        assert at_kill["request_counts"]["completed"] < n  # the kill really was mid-batch
        with (
            processes.serve(config, tmp_path, port, database_url=database_url),
            processes.client(port) as http,
        ):
            ended = processes.wait_for(http, batch_id, lambda b: b["status"] in processes.ENDED)
            results = http.get(f"/v1/batches/{batch_id}").text
    assert ended["status"] == "completed"
    assert ended["request_counts"] == {"total": n, "completed": n, "failed": 0}
    lines = [json.loads(line) for line in results.splitlines()]
    per_id = collections.Counter(line["custom_id"] for line in lines)
    assert set(per_id) == {f"req-{i}" for i in range(n)}
    assert max(per_id.values()) == 1
    assert all(line["result"]["type"] == "succeeded" for line in lines)
