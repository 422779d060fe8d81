"""Benchmark the retention purge: claim stalls while it runs, and the size of
the database across rounds.

    .venv/bin/python benchmarks/retention.py [--rows 200000] [--rounds 4] [--database-url URL]

(``--database-url`` must name a throwaway database: the run empties it first.
Without it, a SQLite file in a temporary directory.)

Each round:

1. fills the store with ``--rows`` ended requests (20 batches, each request
   with a ~600-byte result) whose results expired an hour ago;
2. starts a new 20,000-request batch, and a claimer process that works it the
   way a worker does (claim 8, record their outcomes, again), timing every
   claim; for the first seconds nothing else runs (the peer: claim latency
   without a purge), then the real retention sweep (``RetentionSweep.sweep``,
   the code a worker runs) purges everything expired while claims go on;
3. ends and expires the new batch and purges it too, then measures the
   database: the main file and its WAL on SQLite (and SQLite's freelist),
   ``pg_database_size`` on PostgreSQL.

Prints, per round, the longest claim (the longest stall a claim saw) and the
99th percentile without and with the purge, the purge's duration and rate,
and the database size. Targets: no claim longer than 1 s while purging; the
size after round 1 not growing in later rounds (freed pages are reused).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from batchgate import config
from batchgate.domain import batch as batch_model
from batchgate.domain.states import RequestState
from batchgate.store import sql, tables
from batchgate.worker.retention import RetentionSweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.contract import builders

OLD_MODEL = "old-model"
LIVE_MODEL = "live-model"
BATCHES = 20
LIVE_REQUESTS = 20_000
TTL = 3600
PEER_SECONDS = 4.0

_RESULT = orjson.dumps(
    {
        "id": "msg_0123456789abcdef01234567",
        "type": "message",
        "role": "assistant",
        "model": OLD_MODEL,
        "content": [{"type": "text", "text": "A short answer of a few dozen words. " * 10}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 42, "output_tokens": 97},
    }
).decode()
_PARAMS = orjson.dumps(
    {
        "model": OLD_MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Summarise this passage in one sentence."}],
    }
).decode()


def new_batch(total: int, created_at: float) -> batch_model.Batch:
    return builders.new_batch(total, owner="bench", created_at=created_at, results_ttl=TTL)


def fill_expired(store: sql.SqlJobStore, rows: int) -> None:
    """``rows`` succeeded requests in batches that ended 2 h ago (results
    kept 1 h): every one of them is due for the purge."""
    ended = time.time() - 2 * TTL
    per_batch = rows // BATCHES
    for _ in range(BATCHES):
        batch = new_batch(per_batch, ended - 60)
        requests = (
            batch_model.NewRequest(custom_id=f"r{i}", model=OLD_MODEL, params=_PARAMS)
            for i in range(per_batch)
        )
        store.create_batch(batch, requests)
        with store._write() as conn:  # setup only: outcomes as a worker would write them
            conn.execute(
                tables.requests.update()
                .where(tables.requests.c.batch_id == batch.id)
                .values(
                    state=RequestState.SUCCEEDED.value,
                    result=_RESULT,
                    input_tokens=42,
                    output_tokens=97,
                    started_at=ended - 30,
                    finished_at=ended - 1,
                )
            )
        assert store.finalize_batches(ended, [batch.id]) == [batch.id]


def claimer(url: str, ready: Any, stop: Any, out: Any) -> None:
    """A worker's claim loop on the live batch, timing every claim."""
    store = sql.SqlJobStore.open(url, migrate=False)
    samples: list[tuple[float, float]] = []
    while not stop.is_set():
        started = time.monotonic()
        claimed = store.claim(LIVE_MODEL, 8, "bench-worker", time.time(), 60.0)
        samples.append((started, time.monotonic() - started))
        ready.set()
        if not claimed:
            time.sleep(0.01)
            continue
        outcomes = [
            batch_model.Outcome(
                request_id=request.id,
                attempt=request.attempt,
                worker_id="bench-worker",
                state=RequestState.SUCCEEDED,
                result={"ok": True},
                input_tokens=10,
                output_tokens=20,
            )
            for request in claimed
        ]
        store.record_outcomes(outcomes, time.time())
    store.close()
    out.send(samples)


def database_size(store: sql.SqlJobStore, path: Path | None) -> str:
    if path is None:
        with store._read() as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
        return f"pg_database_size {int(size or 0) / 1e6:7.1f} MB"
    wal = path.with_name(path.name + "-wal")
    with store._read() as conn:
        free = conn.execute(sa.text("PRAGMA freelist_count")).scalar()
        pages = conn.execute(sa.text("PRAGMA page_count")).scalar()
    wal_size = wal.stat().st_size if wal.exists() else 0
    return (
        f"file {path.stat().st_size / 1e6:7.1f} MB, wal {wal_size / 1e6:5.1f} MB, "
        f"free pages {free}/{pages}"
    )


def size_bytes(store: sql.SqlJobStore, path: Path | None) -> int:
    if path is None:
        with store._read() as conn:
            return int(
                conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar() or 0
            )
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def stalls(samples: list[tuple[float, float]]) -> str:
    if not samples:
        return "no claims"
    durations = sorted(duration for _, duration in samples)
    p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
    return (
        f"{len(durations):6d} claims, p99 {p99 * 1000:7.1f} ms, "
        f"longest {durations[-1] * 1000:7.1f} ms"
    )


def one_round(store: sql.SqlJobStore, url: str, rows: int, path: Path | None) -> dict[str, Any]:
    started = time.monotonic()
    fill_expired(store, rows)
    fill_seconds = time.monotonic() - started

    live = new_batch(LIVE_REQUESTS, time.time())
    store.create_batch(
        live,
        (
            batch_model.NewRequest(custom_id=f"l{i}", model=LIVE_MODEL, params=_PARAMS)
            for i in range(LIVE_REQUESTS)
        ),
    )
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=claimer, args=(url, ready, stop, send))
    process.start()
    # The claimer's start-up (imports, connection) is not a stall.
    if not ready.wait(timeout=120):
        process.kill()
        raise RuntimeError("the claimer process did not start")
    peer_from = time.monotonic()
    time.sleep(PEER_SECONDS)
    purge_from = time.monotonic()
    sweep = RetentionSweep(store, config.RetentionSettings())
    removed = asyncio.run(sweep.sweep())
    purge_to = time.monotonic()
    stop.set()
    samples: list[tuple[float, float]] = receive.recv()
    process.join()

    # The live batch ends and ages too, so every round starts from empty.
    store.cancel_batch(live.id, live.owner, time.time())
    store.finalize_batches(time.time(), [live.id])
    with store._write() as conn:
        conn.execute(
            tables.batches.update()
            .where(tables.batches.c.id == live.id)
            .values(results_expire_at=time.time() - 1)
        )
    asyncio.run(sweep.sweep())
    peer = [s for s in samples if peer_from <= s[0] < purge_from]
    during = [s for s in samples if purge_from <= s[0] < purge_to]
    return {
        "fill_seconds": fill_seconds,
        "purge_seconds": purge_to - purge_from,
        "removed": removed,
        "peer": stalls(peer),
        "during": stalls(during),
        "longest_during": max((d for _, d in during), default=0.0),
        "longest_peer": max((d for _, d in peer), default=0.0),
        "size": database_size(store, path),
        "bytes": size_bytes(store, path),
    }


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(sql.engine_module.normalize_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path: Path | None = None
        if args.database_url:
            url = args.database_url
            reset_postgres(url)
        else:
            path = Path(tmp) / "retention.db"
            url = f"sqlite:///{path}"
        store = sql.SqlJobStore.open(url)
        print(f"store: {'PostgreSQL' if path is None else 'SQLite'}; cores: {os.cpu_count()}")
        sizes: list[int] = []
        longest: list[float] = []
        for number in range(1, args.rounds + 1):
            result = one_round(store, url, args.rows, path)
            sizes.append(result["bytes"])
            longest.append(result["longest_during"])
            rate = result["removed"] / result["purge_seconds"]
            print(
                f"round {number}: filled {args.rows} expired rows in "
                f"{result['fill_seconds']:.1f} s; purged {result['removed']} rows+objects "
                f"in {result['purge_seconds']:.1f} s "
                f"({rate:,.0f}/s)"
            )
            print(f"  claims without purge: {result['peer']}")
            print(f"  claims during purge:  {result['during']}")
            print(
                f"  longest claim during purge / without: "
                f"{result['longest_during'] / max(result['longest_peer'], 1e-9):.1f}x"
            )
            print(f"  database after the round: {result['size']}")
        store.close()
        growth = [(size - sizes[0]) / sizes[0] * 100 for size in sizes[1:]]
        print(
            f"longest claim stall while purging, best/worst round: "
            f"{min(longest) * 1000:.1f} / {max(longest) * 1000:.1f} ms (target <= 1000 ms)"
        )
        print(
            "database size vs round 1: "
            + ", ".join(f"round {i + 2} {g:+.1f} %" for i, g in enumerate(growth))
            + f"; median {statistics.median(growth) if growth else 0.0:+.1f} % (target: no growth)"
        )


if __name__ == "__main__":
    main()
