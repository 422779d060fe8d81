"""Dispatch throughput: a whole batch through `batchgate serve` against the fake upstream.

Prints, in one run:
  (a) requests/s of a whole batch (submit -> all results stored) with 0 ms upstream
      latency: batchgate's own overhead bound (target >= 1,000 req/s);
  (b) with 50 ms latency and a concurrency cap of 32, the achieved rate as a fraction
      of the ideal 32 / 0.05 s = 640 req/s (target >= 0.9);
  (c) the same job done by the script a user would write instead (asyncio + httpx +
      a semaphore, results appended to a JSONL file), and batchgate's ratio to it.

(a) and (b) run with metrics on (the default) and off (``[metrics] enabled = false``),
alternating, and print both with their ratio (goal: metrics cost at most 5 %).

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


def body(n: int, tag: str) -> dict[str, Any]:
    return processes.native_batch(
        n, lambda i: f"{tag} question number {i}", model=MODEL, id_prefix="r"
    )


@contextlib.contextmanager
def batchgate(upstream: RemoteUpstream, concurrency: int, metrics: bool) -> Iterator[int]:
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
            tables={"metrics": {"enabled": metrics}},
        )
        port = processes.free_port()
        with processes.serve(cfg, data, port):
            yield port


def run_batch(port: int, n: int, tag: str) -> float:
    """Seconds from submit to every result stored (the batch completed)."""
    with processes.client(port) as http:
        payload = orjson.dumps(body(n, tag))
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


def zero_latency(upstream: RemoteUpstream, n: int, metrics: bool) -> float:
    """(a): requests/s of a whole batch on a 0 ms upstream."""
    upstream.configure(latency_ms=0)
    with batchgate(upstream, concurrency=64, metrics=metrics) as port:
        run_batch(port, 200, "warmup")
        return n / run_batch(port, n, "zero")


def fifty_ms(upstream: RemoteUpstream, n: int, metrics: bool) -> tuple[float, float]:
    """(b): requests/s of a whole batch on a 50 ms upstream with a cap of 32,
    and the steady rate between the first and the last upstream call."""
    with batchgate(upstream, concurrency=32, metrics=metrics) as port:
        upstream.configure(latency_ms=50)
        run_batch(port, 100, "warmup")
        upstream.reset()
        upstream.configure(latency_ms=50)
        seconds = run_batch(port, n, "fifty")
    arrivals = sorted(call["t"] for call in upstream.calls())
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return n / seconds, steady


def label(metrics: bool) -> str:
    return "metrics on " if metrics else "metrics off"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="requests in the 0 ms batch")
    parser.add_argument("--n-latency", type=int, default=3000, help="requests in the 50 ms batches")
    parser.add_argument("--rounds", type=int, default=2, help="on/off rounds; best of each side")
    args = parser.parse_args()
    ideal = 32 / 0.05

    with start_process("--no-log-bodies", latency_ms=0) as upstream:
        rates_a: dict[bool, list[float]] = {True: [], False: []}
        rates_b: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for metrics in (True, False):
                rate = zero_latency(upstream, args.n, metrics)
                rates_a[metrics].append(rate)
                print(f"(a) {label(metrics)}, 0 ms upstream, {args.n} requests: {rate:,.0f} req/s")
        for metrics in (True, False):
            best = max(rates_a[metrics])
            print(f"(a) {label(metrics)}: best {best:,.0f} req/s (target >= 1,000)")
        on_off_a = max(rates_a[True]) / max(rates_a[False])
        print(f"(a) metrics on / off = {on_off_a:.3f} (goal >= 0.95)")

        for _ in range(args.rounds):
            for metrics in (True, False):
                rate, steady = fifty_ms(upstream, args.n_latency, metrics)
                rates_b[metrics].append(rate)
                print(
                    f"(b) {label(metrics)}, 50 ms upstream, cap 32, {args.n_latency} requests: "
                    f"{rate:,.0f} req/s = {rate / ideal:.3f} of the ideal {ideal:.0f} req/s; "
                    f"steady {steady / ideal:.3f} of the ideal"
                )
        for metrics in (True, False):
            best = max(rates_b[metrics])
            print(f"(b) {label(metrics)}: best {best / ideal:.3f} of the ideal (target >= 0.9)")
        on_off_b = max(rates_b[True]) / max(rates_b[False])
        print(f"(b) metrics on / off = {on_off_b:.3f} (goal >= 0.95)")

        upstream.configure(latency_ms=50)
        with tempfile.TemporaryDirectory() as tmp:
            seconds = asyncio.run(
                user_script(
                    upstream.openai_base_url, args.n_latency, 32, Path(tmp) / "results.jsonl"
                )
            )
        rate_c = args.n_latency / seconds
        print(
            f"(c) asyncio + httpx + semaphore(32) script, same job: {seconds:.2f} s = "
            f"{rate_c:,.0f} req/s; batchgate (metrics on) / script = "
            f"{max(rates_b[True]) / rate_c:.3f}"
        )


if __name__ == "__main__":
    main()
