"""The dry-run ETA on the embedded engine against the time the batch took.

    .venv/bin/python benchmarks/estimate.py [MAX_TOKENS]   # default 64

Starts `batchgate serve` on the default (embedded) model, runs a warm-up
batch (24 requests: enough finished work for the ETA to be measured, as a
server that has been running has), then for 5, 20 and 100 requests: asks for
a dry run (`?dry_run=true`), submits the same batch, and times it from submit
to completed. Prints the predicted ETA (the batch alone: nothing queued
ahead), the actual time and the error; the goal is within +-30 %.

Each batch is measured after the ones before it, as a dry run on a live server
is: the later predictions use the earlier batches' work too. Keep the machine
otherwise idle while it runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import engine as engine_bench  # noqa: E402  (benchmarks/engine.py: the 64 prompts)
from tests.e2e import processes  # noqa: E402

from batchgate import config  # noqa: E402

MAX_TOKENS = int(sys.argv[1]) if len(sys.argv) > 1 else 64
WARM_UP = 24
SIZES = (5, 20, 100)
GOAL = 0.30


def batch_body(n: int, offset: int) -> dict[str, Any]:
    prompts = engine_bench.PROMPTS
    return {
        "requests": [
            {
                "custom_id": f"r{i}",
                "params": {
                    "model": config.DEFAULT_MODEL_NAME,
                    "max_tokens": MAX_TOKENS,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": prompts[(offset + i) % len(prompts)]}],
                },
            }
            for i in range(n)
        ]
    }


def run(http: Any, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    batch_id = http.post("/v1/batches", json=body).json()["id"]
    batch = processes.wait_for(http, batch_id, lambda b: b["status"] in processes.ENDED, 900)
    seconds = time.perf_counter() - started
    assert batch["request_counts"]["completed"] == len(body["requests"]), batch
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cfg = processes.write_config(data / "batchgate.toml", {}, worker={"poll_seconds": 0.05})
        port = processes.free_port()
        with processes.serve(cfg, data, port), processes.client(port) as http:
            warm = run(http, batch_body(WARM_UP, 0))
            print(f"warm-up: {WARM_UP} requests in {warm:.1f} s", flush=True)
            print(" size  predicted    actual    error  (throughput source, sample)")
            offset = WARM_UP
            for n in SIZES:
                body = batch_body(n, offset)
                offset += n
                dry = http.post("/v1/batches", params={"dry_run": "true"}, json=body).json()
                eta = dry["models"][0]["eta"]
                predicted = eta["min_seconds"]
                actual = run(http, body)
                error = predicted / actual - 1
                verdict = "ok" if abs(error) <= GOAL else "MISS"
                print(
                    f"{n:5d} {predicted:9.1f} s {actual:7.1f} s {error:+8.0%}  {verdict}  "
                    f"({eta['throughput_source']}, {eta['sample_requests']} requests at "
                    f"concurrency {eta['measured_concurrency']})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
