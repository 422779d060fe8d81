"""Quota isolation: a key over its enqueued-token quota is refused with
``token_limit_exceeded`` while another key's batch runs at full speed.

One `batchgate serve` (API and worker in one process) in front of the fake
upstream (20 ms a call, concurrency 32). Two kinds of ordinary keys, made over
``POST /v1/keys`` by the admin key:

- *steady*: no quota; submits a batch of ``--n`` requests and waits for it;
- *greedy* (a new key each round): first submits a *hold* batch, one request
  of about ``--hold-tokens`` input tokens that the fake upstream never answers
  (a ``hang`` scripted for its text), so the tokens stay enqueued for the
  whole round; then, for as long as steady's batch runs, keeps submitting
  500-request batches (~22k estimated tokens each), every one of them over
  its quota. ``--greedy sdk`` waits 0.5 s after each refusal (the openai
  SDK's first retry delay); ``--greedy hammer`` resubmits at once (only the
  API rate limit, 50 calls/s a key, slows it).

Greedy's quota differs by round, so both refusal paths run:

- *held* rounds: quota = hold + 1,000 tokens. Each resubmission is read,
  parsed and counted, then refused because held + wanted passes the quota;
- *full* rounds: quota = the hold exactly. The key's quota is used up on
  every served model, so each resubmission is refused before its body is
  read or parsed (``quotas.refuse_when_full``).

Greedy's hold request takes one of the model's 32 upstream slots while it
hangs: that is admitted work using its share, not the refused work.

Rounds alternate: steady alone (the peer), then steady beside greedy. After a
contended round greedy's hold batch is cancelled and ends before the next
peer round. Prints steady's requests/s in each, the ratio (beside / alone;
1.0 = no slowdown) and what greedy got back: admitted, refused with
token_limit_exceeded (by path), rate limited.

Run from the repository root:
    .venv/bin/python benchmarks/quota_isolation.py [--greedy sdk|hammer] [--n 2000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import collections
import statistics
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
# Greedy's resubmissions get headroom of this many tokens in a held round: less
# than one of its batches, so each is refused after counting.
HEADROOM = 1000
EARLY = "already enqueued on every model"  # refuse_when_full's wording


def body(n: int, tag: str) -> bytes:
    return orjson.dumps(
        processes.native_batch(n, lambda i: f"{TEXT} ({i})", model=MODEL, id_prefix=f"{tag}-")
    )


def hold_text(tag: str, tokens: int) -> str:
    """A prompt of about ``tokens`` estimated tokens (four characters a token)."""
    return f"hold {tag}: " + "x" * (4 * tokens)


def hold_body(text: str) -> bytes:
    return orjson.dumps(
        {
            "requests": [
                {
                    "custom_id": "hold",
                    "params": {
                        "model": MODEL,
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": text}],
                    },
                }
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


def status(http: httpx.Client, batch_id: str) -> str:
    response = http.get(f"/v1/batches/{batch_id}", headers={"accept": "application/json"})
    response.raise_for_status()
    value: str = response.json()["status"]
    return value


def run_steady(port: int, key: str, n: int, tag: str) -> float:
    """requests/s from submit to the batch completed."""
    with client(port, key) as http:
        started = time.perf_counter()
        created = http.post("/v1/batches", content=body(n, tag))
        created.raise_for_status()
        batch_id = created.json()["id"]
        while status(http, batch_id) not in processes.ENDED:
            time.sleep(0.05)
        return n / (time.perf_counter() - started)


class Greedy:
    """Greedy's client on its own thread: submit the hold batch, then batches
    over the quota until told to stop, waiting ``pause`` after each refusal."""

    def __init__(self, port: int, key: str, hold: bytes, pause: float) -> None:
        self.port, self.key, self.hold, self.pause = port, key, hold, pause
        self.seen: collections.Counter[str] = collections.Counter()
        self.refused = threading.Event()  # the first refusal came back
        self.stop = threading.Event()
        self.hold_id = ""
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        payload = body(500, "greedy")
        with client(self.port, self.key) as http:
            held = http.post("/v1/batches", content=self.hold)
            held.raise_for_status()
            self.hold_id = held.json()["id"]
            self.seen["admitted"] += 1
            while not self.stop.is_set():
                response = http.post("/v1/batches", content=payload)
                if response.status_code == 200:
                    self.seen["admitted"] += 1
                    continue
                if response.status_code != 429:
                    self.seen[f"http {response.status_code}"] += 1
                    continue
                error = response.json()["error"]
                if error["code"] == "token_limit_exceeded":
                    path = "before body read" if EARLY in error["message"] else "after counting"
                    self.seen[f"token_limit_exceeded ({path})"] += 1
                    self.refused.set()
                    self.stop.wait(self.pause)
                else:  # the API rate limit: wait as told, as a client should
                    self.seen[error["code"] or error["type"]] += 1
                    self.stop.wait(float(response.headers.get("retry-after", 0.1)))

    def cancel_hold(self) -> None:
        """Cancel the hold batch and wait until it has ended."""
        with client(self.port, self.key) as http:
            http.post(f"/v1/batches/{self.hold_id}/cancel").raise_for_status()
            deadline = time.monotonic() + 60
            while status(http, self.hold_id) not in processes.ENDED:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"greedy's hold batch {self.hold_id} did not end")
                time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="requests in steady's batch")
    parser.add_argument("--rounds", type=int, default=6, help="held and full rounds alternate")
    parser.add_argument("--greedy", choices=["sdk", "hammer"], default="sdk")
    parser.add_argument("--hold-tokens", type=int, default=3000)
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
            # A short heartbeat: the cancelled hold request's slot frees quickly.
            worker={"poll_seconds": 0.05, "heartbeat_seconds": 0.5},
        )
        port = processes.free_port()
        with processes.serve(cfg, data, port), processes.client(port) as admin:
            pause = 0.5 if args.greedy == "sdk" else 0.0
            steady = make_key(admin, "steady", {})
            alone: list[float] = []
            beside: list[float] = []
            kinds: list[str] = []
            seen: collections.Counter[str] = collections.Counter()
            refused_rate: list[float] = []
            for round_number in range(args.rounds):
                kind = "held" if round_number % 2 == 0 else "full"
                kinds.append(kind)
                alone.append(run_steady(port, steady, args.n, f"alone{round_number}"))

                text = hold_text(f"round {round_number}", args.hold_tokens)
                upstream.configure(by_fingerprint={text: [{"kind": "hang", "hang_seconds": 600}]})
                hold = hold_body(text)
                estimate = admin.post("/v1/batches", params={"dry_run": "true"}, content=hold)
                estimate.raise_for_status()
                held_tokens = int(estimate.json()["input_tokens"])
                quota = held_tokens + (HEADROOM if kind == "held" else 0)
                key = make_key(
                    admin, f"greedy{round_number}", {"max_enqueued_tokens": {MODEL: quota}}
                )
                greedy = Greedy(port, key, hold, pause)
                greedy.thread.start()
                if not greedy.refused.wait(30):
                    raise RuntimeError(f"greedy was never refused: {dict(greedy.seen)}")
                before = sum(v for k, v in greedy.seen.items() if k.startswith("token_limit"))
                started = time.perf_counter()
                beside.append(run_steady(port, steady, args.n, f"beside{round_number}"))
                elapsed = time.perf_counter() - started
                after = sum(v for k, v in greedy.seen.items() if k.startswith("token_limit"))
                refused_rate.append((after - before) / elapsed)
                greedy.stop.set()
                greedy.thread.join()
                greedy.cancel_hold()
                seen.update(greedy.seen)

            ratios = [b / a for a, b in zip(alone, beside, strict=True)]
            print(
                f"greedy client: {args.greedy}; steady's batch: {args.n} requests; "
                f"greedy holds {held_tokens:,} tokens (headroom {HEADROOM:,} in held rounds)"
            )
            print(f"round kind:           {', '.join(f'{k:>5}' for k in kinds)}")
            print(f"steady alone:         {', '.join(f'{r:5.0f}' for r in alone)} req/s")
            print(f"steady beside greedy: {', '.join(f'{r:5.0f}' for r in beside)} req/s")
            print(f"ratio beside/alone:   {', '.join(f'{r:5.2f}' for r in ratios)}")
            for each in ("held", "full"):
                mine = [r for r, k in zip(ratios, kinds, strict=True) if k == each]
                if mine:
                    print(f"median ratio, {each} rounds: {statistics.median(mine):.2f}")
            print(
                "refusals/s during steady's batch: " + ", ".join(f"{r:.0f}" for r in refused_rate)
            )
            print(f"greedy got (all rounds): {dict(sorted(seen.items()))}")


if __name__ == "__main__":
    main()
