"""Dispatch throughput: a whole batch through `batchgate serve` against the fake upstream.

Prints, in one run:
  (a) requests/s of a whole batch (submit -> all results stored) with 0 ms upstream
      latency: batchgate's own overhead bound (target >= 1,000 req/s);
  (b) with 50 ms latency and a concurrency cap of 32, the achieved rate as a fraction
      of the ideal 32 / 0.05 s = 640 req/s (target >= 0.9);
  (c) the same job done by the script a user would write instead (asyncio + httpx +
      a semaphore, results appended to a JSONL file), and batchgate's ratio to it.

Run from the repository root:  .venv/bin/python benchmarks/dispatch.py [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import processes
from tests.fakes.upstream import RemoteUpstream, start_process

MODEL = "bench"
submitted_at = 0.0  # wall clock of the last submit, to line up with the upstream's log


def body(n: int, tag: str) -> dict[str, Any]:
    return {
        "requests": [
            {
                "custom_id": f"r{i}",
                "params": {
                    "model": MODEL,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"{tag} question number {i}"}],
                },
            }
            for i in range(n)
        ]
    }


@contextlib.contextmanager
def batchgate(upstream: RemoteUpstream, concurrency: int) -> Iterator[int]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cfg = processes.write_config(
            data / "batchgate.toml",
            {
                MODEL: {
                    "backend": "openai_compatible",
                    "base_url": upstream.openai_base_url,
                    "max_concurrency": concurrency,
                }
            },
            worker={"poll_seconds": 0.05},
        )
        port = processes.free_port()
        with processes.serve(cfg, data, port):
            yield port


def run_batch(port: int, n: int, tag: str) -> float:
    """Seconds from submit to every result stored (the batch completed)."""
    with processes.client(port) as http:
        payload = orjson.dumps(body(n, tag))
        global submitted_at
        submitted_at = time.time()
        started = time.perf_counter()
        created = http.post(
            "/v1/batches", content=payload, headers={"content-type": "application/json"}
        )
        created.raise_for_status()
        batch_id = created.json()["id"]
        while True:
            batch = processes.batch(http, batch_id)
            if batch["status"] in processes.ENDED:
                break
            time.sleep(0.05)  # a brisk client; real ones poll every few seconds
        elapsed = time.perf_counter() - started
        counts = batch["request_counts"]
        assert counts["completed"] == n, counts
        return elapsed


async def user_script(base_url: str, n: int, concurrency: int, out: Path) -> float:
    """What a user would write instead of a batch API."""
    requests = body(n, "script")["requests"]
    semaphore = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        with out.open("ab") as sink:

            async def one(item: dict[str, Any]) -> None:
                params = item["params"]
                async with semaphore:
                    response = await client.post(
                        "/chat/completions",
                        json={
                            "model": MODEL,
                            "max_tokens": params["max_tokens"],
                            "messages": params["messages"],
                        },
                    )
                sink.write(
                    orjson.dumps({"custom_id": item["custom_id"], "response": response.json()})
                    + b"\n"
                )

            await asyncio.gather(*(one(item) for item in requests))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="requests in the 0 ms batch")
    parser.add_argument("--n-latency", type=int, default=3000, help="requests in the 50 ms batches")
    args = parser.parse_args()

    with start_process("--no-log-bodies", latency_ms=0) as upstream:
        with batchgate(upstream, concurrency=64) as port:
            run_batch(port, 200, "warmup")
            seconds = run_batch(port, args.n, "zero")
        rate_a = args.n / seconds
        print(
            f"(a) 0 ms upstream, {args.n} requests: {seconds:.2f} s = {rate_a:,.0f} req/s "
            f"(target >= 1,000)"
        )

        upstream.configure(latency_ms=50)
        ideal = 32 / 0.05
        with batchgate(upstream, concurrency=32) as port:
            run_batch(port, 100, "warmup")
            upstream.reset()
            upstream.configure(latency_ms=50)
            seconds = run_batch(port, args.n_latency, "fifty")
        rate_b = args.n_latency / seconds
        arrivals = sorted(call["t"] for call in upstream.calls())
        steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        print(
            f"    first upstream call {arrivals[0] - submitted_at:.2f} s after submit; "
            f"rate between first and last call {steady:,.0f} req/s "
            f"= {steady / ideal:.3f} of the ideal"
        )
        print(
            f"(b) 50 ms upstream, cap 32, {args.n_latency} requests: {seconds:.2f} s = "
            f"{rate_b:,.0f} req/s = {rate_b / ideal:.3f} of the ideal {ideal:.0f} req/s "
            f"(target >= 0.9)"
        )

        with tempfile.TemporaryDirectory() as tmp:
            seconds = asyncio.run(
                user_script(
                    upstream.openai_base_url, args.n_latency, 32, Path(tmp) / "results.jsonl"
                )
            )
        rate_c = args.n_latency / seconds
        print(
            f"(c) asyncio + httpx + semaphore(32) script, same job: {seconds:.2f} s = "
            f"{rate_c:,.0f} req/s; batchgate / script = {rate_b / rate_c:.3f}"
        )


if __name__ == "__main__":
    main()
