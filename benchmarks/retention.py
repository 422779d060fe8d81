"""Benchmark the retention purge: claim stalls while it runs, and the size of
the database across rounds.

    .venv/bin/python benchmarks/retention.py [--rows 200000] [--rounds 4] [--database-url URL]

(``--database-url`` must name a throwaway database: the run empties it first.
Without it, a SQLite file in a temporary directory.)

Each round:

1. fills the store with ``--rows`` ended requests (20 batches, each request
   with a ~600-byte result) whose results expired an hour ago;
2. starts a claimer process that works new batches the way a worker does
   (claim 8, record their outcomes, again), timing every claim, and keeps
   submitting new 5,000-request batches whenever fewer than 2,000 live
   requests are left queued, so claims find work for as long as the purge
   runs however long that is; for the first seconds nothing else runs (the
   peer: claim latency without a purge), then the real retention sweep
   (``RetentionSweep.sweep``, the code a worker runs) purges everything
   expired while claims go on;
3. ends and expires the new batches and purges them too, then measures the
   database: the main file and its WAL on SQLite (and SQLite's freelist),
   ``pg_database_size`` on PostgreSQL. It is measured after the fill too,
   when the round's data is all there: the round's high-water mark.

Prints, per round, how many claims got work during the purge (and how many
found none), the longest claim (the longest stall a claim saw) and the 99th
percentile without and with the purge, the purge's duration and rate, and the
database size. Targets: no claim longer than 1 s while purging; the size after
round 1 not growing in later rounds (freed pages are reused). The script exits
with status 1 when a claim during a purge took longer than 1 s, when claims
ran out of work during a purge (the measurement would not cover it), or when a
later round's high-water mark exceeds round 1's by more than ``--max-growth``
percent.

The high-water mark is the size compared: the larger of the size after the
fill and after the round. A SQLite file never shrinks, so both are the same.
PostgreSQL's VACUUM makes a purged row's space reusable in place but gives
back to the file system only empty pages at the end of a table (and only when
it gets the table's exclusive lock for that), so the size after a round can
swing between the live data and the whole round's; a table that did not
reuse its freed space would show in the next round's fill, which would have
to extend the file.
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
# The claimer submits a batch of LIVE_STEP requests whenever fewer than
# LIVE_LOW of its requests are left queued.
LIVE_STEP = 5_000
LIVE_LOW = 2_000
CLAIM_SIZE = 8
TTL = 3600
PEER_SECONDS = 4.0
MAX_STALL_SECONDS = 1.0

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


def submit_live(store: sql.SqlJobStore) -> str:
    batch = new_batch(LIVE_STEP, time.time())
    store.create_batch(
        batch,
        (
            batch_model.NewRequest(custom_id=f"l{i}", model=LIVE_MODEL, params=_PARAMS)
            for i in range(LIVE_STEP)
        ),
    )
    return batch.id


def claimer(url: str, ready: Any, stop: Any, out: Any) -> None:
    """A worker's claim loop on live batches, timing every claim, and a
    client that keeps submitting: the work never runs out while it runs.
    Sends back ``(samples, live batch ids)``; a sample is (start, duration,
    requests claimed)."""
    store = sql.SqlJobStore.open(url, migrate=False)
    samples: list[tuple[float, float, int]] = []
    live_ids = [submit_live(store)]
    queued = LIVE_STEP
    while not stop.is_set():
        if queued < LIVE_LOW:
            live_ids.append(submit_live(store))
            queued += LIVE_STEP
        started = time.monotonic()
        claimed = store.claim(LIVE_MODEL, CLAIM_SIZE, "bench-worker", time.time(), 60.0)
        samples.append((started, time.monotonic() - started, len(claimed)))
        ready.set()
        if not claimed:
            time.sleep(0.01)
            continue
        queued -= len(claimed)
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
    out.send((samples, live_ids))


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


def stalls(samples: list[tuple[float, float, int]]) -> str:
    if not samples:
        return "no claims"
    durations = sorted(duration for _, duration, _ in samples)
    worked = sum(1 for *_, claimed in samples if claimed)
    p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
    return (
        f"{len(durations):6d} claims ({worked} got work, {len(durations) - worked} found none), "
        f"p99 {p99 * 1000:7.1f} ms, longest {durations[-1] * 1000:7.1f} ms"
    )


def one_round(store: sql.SqlJobStore, url: str, rows: int, path: Path | None) -> dict[str, Any]:
    started = time.monotonic()
    fill_expired(store, rows)
    fill_seconds = time.monotonic() - started
    filled_size, filled_bytes = database_size(store, path), size_bytes(store, path)

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=claimer, args=(url, ready, stop, send))
    process.start()
    # The claimer's start-up (imports, connection, first batch) is not a stall.
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
    samples: list[tuple[float, float, int]]
    live_ids: list[str]
    samples, live_ids = receive.recv()
    process.join()

    # The live batches end and age too, so every round starts from empty.
    for live_id in live_ids:
        store.cancel_batch(live_id, "bench", time.time())
    store.finalize_batches(time.time(), live_ids)
    with store._write() as conn:
        conn.execute(
            tables.batches.update()
            .where(tables.batches.c.id.in_(live_ids))
            .values(results_expire_at=time.time() - 1)
        )
    asyncio.run(sweep.sweep())
    peer = [s for s in samples if peer_from <= s[0] < purge_from]
    during = [s for s in samples if purge_from <= s[0] < purge_to]
    return {
        "fill_seconds": fill_seconds,
        "purge_seconds": purge_to - purge_from,
        "removed": removed,
        "live_batches": len(live_ids),
        "peer": stalls(peer),
        "during": stalls(during),
        "worked_during": sum(1 for *_, claimed in during if claimed),
        "idle_during": sum(1 for *_, claimed in during if not claimed),
        "claimed_during": sum(claimed for *_, claimed in during),
        "longest_during": max((d for _, d, _ in during), default=0.0),
        "longest_peer": max((d for _, d, _ in peer), default=0.0),
        "size": database_size(store, path),
        "bytes": size_bytes(store, path),
        "filled_size": filled_size,
        "filled_bytes": filled_bytes,
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
    parser.add_argument(
        "--max-growth",
        type=float,
        default=2.0,
        help="percent a later round's database size may exceed round 1's (default 2)",
    )
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
        failures: list[str] = []
        for number in range(1, args.rounds + 1):
            result = one_round(store, url, args.rows, path)
            sizes.append(max(result["bytes"], result["filled_bytes"]))
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
                f"  during the purge {result['worked_during']} claims got work "
                f"({result['claimed_during']} requests claimed and recorded, "
                f"{result['live_batches']} live batches submitted this round), "
                f"{result['idle_during']} found none"
            )
            print(
                f"  longest claim during purge / without: "
                f"{result['longest_during'] / max(result['longest_peer'], 1e-9):.1f}x"
            )
            print(f"  database after the fill:  {result['filled_size']}")
            print(f"  database after the round: {result['size']}")
            sys.stdout.flush()
            if result["longest_during"] > MAX_STALL_SECONDS:
                failures.append(
                    f"round {number}: a claim stalled "
                    f"{result['longest_during'] * 1000:.0f} ms during the purge"
                )
            if result["idle_during"] or not result["worked_during"]:
                failures.append(
                    f"round {number}: claims ran out of work during the purge "
                    f"({result['idle_during']} found none)"
                )
        store.close()
        growth = [(size - sizes[0]) / sizes[0] * 100 for size in sizes[1:]]
        print(
            f"longest claim stall while purging, best/worst round: "
            f"{min(longest) * 1000:.1f} / {max(longest) * 1000:.1f} ms "
            f"(target <= {MAX_STALL_SECONDS * 1000:.0f} ms)"
        )
        print(
            "database high-water mark vs round 1: "
            + ", ".join(f"round {i + 2} {g:+.1f} %" for i, g in enumerate(growth))
            + f"; median {statistics.median(growth) if growth else 0.0:+.1f} % "
            f"(target: at most {args.max_growth:+.1f} %)"
        )
        for i, g in enumerate(growth):
            if g > args.max_growth:
                failures.append(
                    f"round {i + 2}: database high-water mark {g:+.1f} % above round 1's "
                    f"(tolerance {args.max_growth:.1f} %)"
                )
        if failures:
            print("FAIL: " + "; ".join(failures))
            sys.exit(1)
        print("PASS: no claim stalled over 1 s while purging, and the database did not grow")


if __name__ == "__main__":
    main()
