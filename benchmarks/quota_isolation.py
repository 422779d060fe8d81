"""Quota isolation: a key over its enqueued-token quota is refused with
``token_limit_exceeded`` while another key's batch runs at full speed.

One `batchgate serve` (API and worker in one process) in front of the fake
upstream (20 ms a call, concurrency 32). Two ordinary keys, made over
``POST /v1/keys`` by the admin key:

- *steady*: no quota; submits a batch of ``--n`` requests and waits for it;
- *greedy*: ``max_enqueued_tokens`` of about 70 requests' worth; first fills
  its quota with one admitted batch, then keeps submitting 500-request
  batches for as long as steady's batch runs: ``--greedy sdk`` waits 0.5 s
  after each refusal (the openai SDK's first retry delay), ``--greedy hammer``
  resubmits at once (only the API rate limit slows it).

Rounds alternate: steady alone (the peer), then steady beside greedy. Prints
steady's requests/s in each, the ratio (beside / alone; 1.0 = no slowdown),
and what greedy got back (admitted, token_limit_exceeded, rate limited).

Run from the repository root:  .venv/bin/python benchmarks/quota_isolation.py [--n 2000]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import processes
from tests.fakes.upstream import start_process

MODEL = "bench"
TEXT = "Summarise the following sentence in one word: the cat sat on the mat. " * 2


def body(n: int, tag: str) -> bytes:
    return orjson.dumps(
        {
            "requests": [
                {
                    "custom_id": f"{tag}-{i}",
                    "params": {
                        "model": MODEL,
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": f"{TEXT} ({i})"}],
                    },
                }
                for i in range(n)
            ]
        }
    )


def make_key(admin: httpx.Client, name: str, quotas: dict[str, Any]) -> str:
    response = admin.post("/v1/keys", json={"name": name, "quotas": quotas})
    response.raise_for_status()
    secret: str = response.json()["value"]
    return secret


def client(port: int, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=120,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def run_steady(port: int, key: str, n: int, tag: str) -> float:
    """requests/s from submit to the batch completed."""
    with client(port, key) as http:
        started = time.perf_counter()
        created = http.post("/v1/batches", content=body(n, tag))
        created.raise_for_status()
        batch_id = created.json()["id"]
        while True:
            status = http.get(f"/v1/batches/{batch_id}", headers={"accept": "application/json"})
            if status.json()["status"] in processes.ENDED:
                break
            time.sleep(0.05)
        return n / (time.perf_counter() - started)


def greedy_client(
    port: int, key: str, pause: float, stop: threading.Event, seen: collections.Counter[str]
) -> None:
    """Fill the quota once, then submit over it until told to stop, waiting
    ``pause`` seconds after each refusal."""
    payload = body(500, "greedy")
    with client(port, key) as http:
        first = http.post("/v1/batches", content=body(50, "fill"))
        seen["admitted" if first.status_code == 200 else f"first {first.status_code}"] += 1
        while not stop.is_set():
            response = http.post("/v1/batches", content=payload)
            if response.status_code == 200:
                seen["admitted"] += 1
            elif response.status_code == 429:
                seen[response.json()["error"]["code"]] += 1
                retry_after = float(response.headers.get("retry-after", 0))
                stop.wait(max(pause, min(retry_after, 1.0)))
            else:
                seen[f"http {response.status_code}"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="requests in steady's batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--greedy", choices=["sdk", "hammer"], default="sdk")
    args = parser.parse_args()
    with (
        start_process("--no-log-bodies", latency_ms=20) as upstream,
        tempfile.TemporaryDirectory() as tmp,
    ):
        data = Path(tmp)
        cfg = processes.write_config(
            data / "batchgate.toml",
            {
                MODEL: {
                    "backend": "openai_compatible",
                    "base_url": upstream.openai_base_url,
                    "max_concurrency": 32,
                }
            },
            worker={"poll_seconds": 0.05},
        )
        port = processes.free_port()
        with processes.serve(cfg, data, port), processes.client(port) as admin:
            # ~70 of greedy's requests (about 42 estimated tokens each).
            greedy = make_key(admin, "greedy", {"max_enqueued_tokens": {MODEL: 3000}})
            pause = 0.5 if args.greedy == "sdk" else 0.0
            steady = make_key(admin, "steady", {})
            alone: list[float] = []
            beside: list[float] = []
            seen: collections.Counter[str] = collections.Counter()
            contended = 0.0
            for round_number in range(args.rounds):
                alone.append(run_steady(port, steady, args.n, f"alone{round_number}"))
                stop = threading.Event()
                thread = threading.Thread(
                    target=greedy_client, args=(port, greedy, pause, stop, seen)
                )
                thread.start()
                time.sleep(0.5)  # greedy has filled its quota and is being refused
                started = time.perf_counter()
                beside.append(run_steady(port, steady, args.n, f"beside{round_number}"))
                contended += time.perf_counter() - started
                stop.set()
                thread.join()
                time.sleep(1.0)  # greedy's admitted work drains before the next peer round
            ratios = [b / a for a, b in zip(alone, beside, strict=True)]
            print(f"greedy client: {args.greedy}; steady's batch: {args.n} requests")
            print(f"steady alone:         {', '.join(f'{r:.0f}' for r in alone)} req/s")
            print(f"steady beside greedy: {', '.join(f'{r:.0f}' for r in beside)} req/s")
            print(
                f"ratio beside/alone:   best {max(ratios):.2f}, rounds "
                + ", ".join(f"{r:.2f}" for r in ratios)
            )
            refused = seen["token_limit_exceeded"]
            print(
                f"greedy got:           {dict(seen)} "
                f"(~{refused / contended:.0f} refused batches/s while steady ran)"
            )


if __name__ == "__main__":
    main()
