"""The embedded engine through the whole server, against the engine in-process.

    .venv/bin/python benchmarks/serve_engine.py

Prints, from one run:

1. the engine's in-process throughput on the 64 prompts of benchmarks/engine.py
   (greedy, max_tokens 128, every request submitted at once);
2. the same 64 requests as one native batch submitted over HTTP to a
   `batchgate serve` process on the default (embedded) model: output tokens per
   second from submit to the batch completed, and the ratio to (1) (target >= 0.85);
3. while (2) runs, `GET /v1/batches/{id}` polled every 50 ms (the client's
   own wait for the end): latency p50 / p99 / max (target p99 <= 100 ms).

Keep the machine otherwise idle while it runs.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import engine as engine_bench  # noqa: E402  (benchmarks/engine.py)
from tests.e2e import processes  # noqa: E402

from batchgate import config  # noqa: E402

MAX_TOKENS = 128


def in_process() -> tuple[int, float]:
    requests = engine_bench._requests(engine_bench.PROMPTS, MAX_TOKENS, None)
    tokens, seconds, _responses, _stats = asyncio.run(engine_bench.engine_run(requests, {}))
    return tokens, seconds


def poll(http: httpx.Client, batch_id: str, out: list[float]) -> dict[str, object]:
    """Poll like a client does, timing each answer, until the batch ends."""
    while True:
        started = time.perf_counter()
        batch: dict[str, object] = http.get(
            f"/v1/batches/{batch_id}", headers={"accept": "application/json"}
        ).json()
        out.append(time.perf_counter() - started)
        if batch["status"] in processes.ENDED:
            return batch
        time.sleep(0.05)


def through_server() -> tuple[int, float, list[float]]:
    body = {
        "requests": [
            {
                "custom_id": f"p{i}",
                "params": {
                    "model": config.DEFAULT_MODEL_NAME,
                    "max_tokens": MAX_TOKENS,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": prompt}],
                },
            }
            for i, prompt in enumerate(engine_bench.PROMPTS)
        ]
    }
    warm = {
        "requests": [
            {
                "custom_id": "w",
                "params": {
                    "model": config.DEFAULT_MODEL_NAME,
                    "max_tokens": 1,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            }
        ]
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cfg = processes.write_config(data / "batchgate.toml", {}, worker={"poll_seconds": 0.05})
        port = processes.free_port()
        with (
            processes.serve(cfg, data, port),
            processes.client(port) as http,
        ):
            # Load the model first, as the in-process run does.
            warm_id = http.post("/v1/batches", json=warm).json()["id"]
            processes.wait_for(http, warm_id, lambda b: b["status"] == "completed")
            started = time.perf_counter()
            batch_id = http.post("/v1/batches", json=body).json()["id"]
            latencies: list[float] = []
            batch = poll(http, batch_id, latencies)
            seconds = time.perf_counter() - started
            assert batch["request_counts"]["completed"] == len(body["requests"]), batch
            return batch["usage"]["output_tokens"], seconds, latencies


def main() -> None:
    # The model file must not depend on a config: the default model is used.
    tokens_a, seconds_a = in_process()
    rate_a = tokens_a / seconds_a
    print(
        f"1. engine in-process: {tokens_a} tokens in {seconds_a:.1f} s = {rate_a:.1f} tok/s",
        flush=True,
    )
    tokens_b, seconds_b, latencies = through_server()
    rate_b = tokens_b / seconds_b
    print(
        f"2. through batchgate serve: {tokens_b} tokens in {seconds_b:.1f} s = "
        f"{rate_b:.1f} tok/s; ratio server / in-process = {rate_b / rate_a:.2f} "
        f"(target >= 0.85)"
    )
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(
        f"3. GET /v1/batches/{{id}} while it ran: {len(ordered)} polls, "
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms (target p99 <= 100 ms)"
    )


if __name__ == "__main__":
    main()
