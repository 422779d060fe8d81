"""Provider batch APIs (issue 19): what routing a model through an upstream's
batch API costs the gateway, beside the same requests sent real-time.

Three processes on 127.0.0.1, all started here:

- the fake upstream (``python -m tests.fakes.upstream``: chat completions
  after ``--latency-ms``);
- the *upstream*: a ``batchgate serve`` with its own data dir whose model
  ``bench-upstream`` is ``openai_compatible`` on the fake: it serves the
  OpenAI Files + Batch API that ``openai_batch`` talks to;
- the *router*: a ``batchgate serve`` with its own data dir (SQLite) and
  two models: ``bench-batch`` (``openai_batch`` on the upstream, jobs of
  ``--job-size`` requests, polled every ``--poll-seconds``) and
  ``bench-realtime`` (``openai_compatible`` straight on the fake). Both
  sides cap concurrent calls at ``--concurrency``.

Each round sends ``--requests`` requests as ``--batches`` native batches
spread over ``--keys`` tenant keys, once to each model (the two modes
alternate, round by round). A watcher lists each tenant's batches every
``--watch-seconds`` and notes when each batch is first seen ended: that is
when its results are readable (the native GET then streams them). It runs
in both modes, so its cost is on both sides; a list counts each batch's rows
by state, so it is not small, and the longer mode pays for more of them. At
the end the script measures, on the idle router, its CPU a second with no
work and the CPU of one watcher round, and prints each mode's CPU less its
watcher rounds beside the raw figure. Per mode it prints:

- batch mode: the number of upstream batches (listed on the upstream);
- the router's CPU seconds (user + sys, of the process, from psutil: API
  and worker run in it) per 1,000 requests, from the first submit to the
  last batch seen ended; batch mode: the upstream batchgate's too;
- wall time, first submit to the last batch readable (batch mode: includes
  the upstream's own work on the jobs);
- batch mode: the time from the upstream job's end (its batch's
  ``completed_at`` in the upstream's database, to the microsecond; the API
  rounds it to seconds) to the results being readable, at p50 and p99:
  *per tenant batch* (seen ended by the watcher, after the last of the
  upstream batches that held its rows ended; includes up to one watch
  interval), and *per request* (the row's ``finished_at`` in the router's
  database: it is in the partial results from then on). Both include up to
  one poll interval of the router's driver, which is how long it may take
  to notice the end; the job lines show where the rest goes;
- the router's database growth per 1,000 requests: the bytes of its pages
  in use (page_count - freelist_count, read through SQLite, WAL included),
  and the size of the files on disk (db + WAL);

then the ratios batch / real-time. The goals (issue 19): batch routing
costs no more router CPU per request than real-time routing, and results
are readable within 5 s of the upstream ending a 10,000-line job.

Exits with status 1 when a request did not succeed, a tenant's results do
not match its requests, or the upstream saw more batches than
ceil(requests / job size).

Run from the repository root:
    .venv/bin/python benchmarks/provider_batches.py [--requests 20000] [--batches 200] [--rounds 1]
(``--modes batch`` runs one mode alone, e.g. to profile the router: it
prints its pid.) The smoke size, ``--requests 200 --batches 4``, takes ~15 s
(tests/e2e/test_provider_batches_bench.py runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import processes
from tests.fakes.upstream import RemoteUpstream, start_process

UPSTREAM_MODEL = "bench-upstream"
BATCH_MODEL = "bench-batch"
REALTIME_MODEL = "bench-realtime"
MODES = {"batch": BATCH_MODEL, "realtime": REALTIME_MODEL}


@dataclasses.dataclass
class Servers:
    router: processes.Process
    router_port: int
    router_db: Path
    upstream: processes.Process
    upstream_port: int
    upstream_db: Path
    tenants: list[str]  # the tenants' API keys


@dataclasses.dataclass
class Phase:
    """One mode's run of one round."""

    mode: str
    requests: int
    cpu: float
    wall: float
    watches: int  # the watcher's rounds of lists during the phase
    used_growth: int
    file_growth: int
    upstream_batches: int = 0
    upstream_cpu: float = 0.0
    batch_latency: list[float] = dataclasses.field(default_factory=list)
    request_latency: list[float] = dataclasses.field(default_factory=list)
    jobs: list[str] = dataclasses.field(default_factory=list)

    def per_1000(self, value: float) -> float:
        return value * 1000 / self.requests


# -- the processes -------------------------------------------------------------------


def upstream_config(data: Path, fake: RemoteUpstream, args: argparse.Namespace) -> Path:
    return processes.write_config(
        data / "batchgate.toml",
        {
            UPSTREAM_MODEL: {
                "backend": "openai_compatible",
                "base_url": fake.openai_base_url,
                "max_concurrency": args.concurrency,
            }
        },
        worker={"poll_seconds": 0.05},
        tables={"rate_limit": {"requests_per_second": 0}},
    )


def router_config(data: Path, fake: RemoteUpstream, upstream_port: int, args: Any) -> Path:
    return processes.write_config(
        data / "batchgate.toml",
        {
            BATCH_MODEL: {
                "backend": "openai_batch",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": processes.API_KEY,
                "upstream_model": UPSTREAM_MODEL,
                "max_concurrency": args.concurrency,
                "max_requests_per_job": args.job_size,
                "flush_after_seconds": args.flush_after,
                "poll_seconds": args.poll_seconds,
                "poll_max_seconds": args.poll_seconds,
            },
            REALTIME_MODEL: {
                "backend": "openai_compatible",
                "base_url": fake.openai_base_url,
                "max_concurrency": args.concurrency,
            },
        },
        # Worker settings are the defaults: what an operator would run.
        # The tenants' batch creates and the watcher's lists are many calls
        # a second per key: no rate limit.
        tables={"rate_limit": {"requests_per_second": 0}},
    )


def make_tenants(port: int, count: int) -> list[str]:
    with processes.client(port) as http:
        keys = []
        for i in range(count):
            created = http.post("/v1/keys", json={"name": f"tenant-{i}"})
            created.raise_for_status()
            keys.append(created.json()["value"])
        return keys


@contextlib.contextmanager
def servers(args: argparse.Namespace) -> Iterator[Servers]:
    with (
        start_process("--no-log-bodies", latency_ms=args.latency_ms) as fake,
        tempfile.TemporaryDirectory() as upstream_tmp,
        tempfile.TemporaryDirectory() as router_tmp,
    ):
        upstream_data, router_data = Path(upstream_tmp), Path(router_tmp)
        upstream_port = processes.free_port()
        with processes.serve(
            upstream_config(upstream_data, fake, args), upstream_data, upstream_port
        ) as upstream:
            router_port = processes.free_port()
            config = router_config(router_data, fake, upstream_port, args)
            with processes.serve(config, router_data, router_port) as router:
                yield Servers(
                    router=router,
                    router_port=router_port,
                    router_db=router_data / "batchgate.db",
                    upstream=upstream,
                    upstream_port=upstream_port,
                    upstream_db=upstream_data / "batchgate.db",
                    tenants=make_tenants(router_port, args.keys),
                )


# -- measurements --------------------------------------------------------------------


def cpu_seconds(process: processes.Process) -> float:
    times = psutil.Process(process.popen.pid).cpu_times()
    return float(times.user + times.system)


def db_sizes(path: Path) -> tuple[int, int]:
    """(bytes of pages in use, bytes of the db and WAL files) of a SQLite
    database another process is writing: the page counts are read in a
    transaction, so they include what the WAL holds."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    wal = path.with_name(path.name + "-wal")
    files = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return (pages - free) * page_size, files


def read_rows(path: Path, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        return list(conn.execute(query, params))


def marks(n: int) -> str:
    return ",".join("?" * n)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or under it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def upstream_batch_ids(port: int) -> set[str]:
    """The upstream's batches made with the router's key (all of them)."""
    ids: set[str] = set()
    after: str | None = None
    with processes.client(port) as http:
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after:
                params["after"] = after
            page = http.get("/v1/batches", params=params)
            page.raise_for_status()
            body = page.json()
            ids.update(item["id"] for item in body["data"])
            if not body["has_more"]:
                return ids
            after = body["last_id"]


# -- a phase: submit, watch until every batch is readable ----------------------------


class Watcher(threading.Thread):
    """Lists each tenant's newest batches every ``every`` seconds and notes
    when each wanted batch is first seen ended (its results readable)."""

    def __init__(self, port: int, tenants: list[str], per_key: int, every: float) -> None:
        super().__init__(daemon=True)
        self.clients = [
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                timeout=60,
                headers={"authorization": f"Bearer {key}"},
            )
            for key in tenants
        ]
        self.per_key = per_key
        self.every = every
        self.wanted: set[str] = set()
        self.ended: dict[str, float] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.rounds = 0

    def want(self, batch_id: str) -> None:
        with self.lock:
            self.wanted.add(batch_id)

    def run(self) -> None:
        try:
            while not self.stop.wait(self.every):
                self.look()
        except BaseException as exc:  # reported by the phase
            self.error = exc

    def look(self) -> None:
        for http in self.clients:
            page = http.get("/v1/batches", params={"limit": self.per_key})
            page.raise_for_status()
            seen = time.time()
            for item in page.json()["data"]:
                with self.lock:
                    if item["id"] in self.wanted and item["status"] in processes.ENDED:
                        self.ended.setdefault(item["id"], seen)
                        self.objects.setdefault(item["id"], item)
        self.rounds += 1

    def done(self) -> bool:
        with self.lock:
            return len(self.ended) == len(self.wanted)

    def close(self) -> None:
        self.stop.set()
        if self.is_alive():
            self.join(30)
        for http in self.clients:
            http.close()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def submit(
    servers: Servers, model: str, sizes: list[int], tag: str, watcher: Watcher
) -> dict[str, tuple[int, int]]:
    """Create the batches, tenants in turn; {batch id: (tenant, size)}."""
    created: dict[str, tuple[int, int]] = {}
    clients = [
        httpx.Client(
            base_url=f"http://127.0.0.1:{servers.router_port}",
            timeout=60,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        for key in servers.tenants
    ]
    try:
        for b, size in enumerate(sizes):
            tenant = b % len(clients)
            body = processes.native_batch(
                size, lambda i, b=b: f"{tag} batch {b} question {i}", model=model, id_prefix="c"
            )
            response = clients[tenant].post("/v1/batches", content=orjson.dumps(body))
            response.raise_for_status()
            batch_id = response.json()["id"]
            created[batch_id] = (tenant, size)
            watcher.want(batch_id)
    finally:
        for http in clients:
            http.close()
    return created


def check_results(servers: Servers, created: dict[str, tuple[int, int]], watcher: Watcher) -> None:
    """Every request succeeded, and one batch's results (the first) name its
    own custom_ids, each once, with the fake's reply to its own prompt."""
    for batch_id, (_, size) in created.items():
        counts = watcher.objects[batch_id]["request_counts"]
        if counts["completed"] != size or counts["failed"] != 0:
            sys.exit(f"batch {batch_id}: {counts}, expected {size} completed")
    batch_id, (tenant, size) = next(iter(created.items()))
    with httpx.Client(
        base_url=f"http://127.0.0.1:{servers.router_port}",
        timeout=60,
        headers={"authorization": f"Bearer {servers.tenants[tenant]}"},
    ) as http:
        lines = [orjson.loads(line) for line in http.get(f"/v1/batches/{batch_id}").iter_lines()]
    custom_ids = sorted(line["custom_id"] for line in lines)
    if custom_ids != sorted(f"c{i}" for i in range(size)):
        sys.exit(f"batch {batch_id}: results name {custom_ids[:5]}..., not c0..c{size - 1}")
    if any(line["result"]["type"] != "succeeded" for line in lines):
        sys.exit(f"batch {batch_id}: a result did not succeed")


def run_phase(servers: Servers, mode: str, round_no: int, args: argparse.Namespace) -> Phase:
    sizes = split(args.requests, args.batches)
    before_ids = upstream_batch_ids(servers.upstream_port) if mode == "batch" else set()
    used0, files0 = db_sizes(servers.router_db)
    watcher = Watcher(
        servers.router_port,
        servers.tenants,
        per_key=math.ceil(args.batches / args.keys),
        every=args.watch_seconds,
    )
    watcher.start()
    try:
        cpu0, started = cpu_seconds(servers.router), time.time()
        upstream_cpu0 = cpu_seconds(servers.upstream)
        created = submit(servers, MODES[mode], sizes, f"r{round_no} {mode}", watcher)
        deadline = started + args.timeout
        while not watcher.done():
            if watcher.error is not None:
                raise watcher.error
            if time.time() > deadline:
                sys.exit(f"{mode}: {len(watcher.ended)} of {len(created)} batches ended in time")
            time.sleep(args.watch_seconds / 2)
        cpu1, finished = cpu_seconds(servers.router), max(watcher.ended.values())
        watches, upstream_cpu = watcher.rounds, cpu_seconds(servers.upstream) - upstream_cpu0
    finally:
        watcher.close()
    used1, files1 = db_sizes(servers.router_db)
    check_results(servers, created, watcher)
    phase = Phase(
        mode=mode,
        requests=sum(sizes),
        cpu=cpu1 - cpu0,
        wall=finished - started,
        watches=watches,
        used_growth=used1 - used0,
        file_growth=files1 - files0,
    )
    if mode == "batch":
        new_ids = upstream_batch_ids(servers.upstream_port) - before_ids
        phase.upstream_batches = len(new_ids)
        phase.upstream_cpu = upstream_cpu
        batch_timing(servers, phase, created, watcher.ended, started)
    return phase


@dataclasses.dataclass
class Idle:
    """What the router costs with no work: per second (its worker's loops
    and sweeps), and per round of the watcher's lists (on batches already
    ended: their tallies are counted from their rows all the same)."""

    per_second: float
    per_watch: float


def idle_costs(servers: Servers, args: argparse.Namespace, rounds: int = 40) -> Idle:
    cpu0, started = cpu_seconds(servers.router), time.perf_counter()
    time.sleep(3.0)
    per_second = (cpu_seconds(servers.router) - cpu0) / (time.perf_counter() - started)
    watcher = Watcher(
        servers.router_port,
        servers.tenants,
        per_key=math.ceil(args.batches / args.keys),
        every=args.watch_seconds,
    )
    try:
        cpu0, started = cpu_seconds(servers.router), time.perf_counter()
        for _ in range(rounds):
            watcher.look()
        spent = cpu_seconds(servers.router) - cpu0
        spent -= per_second * (time.perf_counter() - started)
    finally:
        watcher.close()
    return Idle(per_second, max(0.0, spent / rounds))


def batch_timing(
    servers: Servers,
    phase: Phase,
    created: dict[str, tuple[int, int]],
    readable: dict[str, float],
    started: float,
) -> None:
    """From the upstream batches' ends to the tenants' results: per tenant
    batch and per request; and each job's way (relative to the first submit)."""
    ids = list(created)
    rows = read_rows(
        servers.router_db,
        "SELECT r.batch_id, r.finished_at, j.upstream_batch_id FROM requests r "
        f"JOIN upstream_jobs j ON j.id = r.upstream_job_id WHERE r.batch_id IN ({marks(len(ids))})",
        ids,
    )
    if len(rows) != phase.requests:
        sys.exit(f"{len(rows)} of {phase.requests} requests name an upstream job")
    upstream_ids = sorted({row[2] for row in rows})
    ends = dict(
        read_rows(
            servers.upstream_db,
            f"SELECT id, completed_at FROM batches WHERE id IN ({marks(len(upstream_ids))})",
            upstream_ids,
        )
    )
    last_end: dict[str, float] = {}
    for batch_id, finished_at, upstream_id in rows:
        end = ends[upstream_id]
        phase.request_latency.append(finished_at - end)
        last_end[batch_id] = max(last_end.get(batch_id, 0.0), end)
    phase.batch_latency = [readable[b] - last_end[b] for b in ids]
    jobs = read_rows(
        servers.router_db,
        "SELECT upstream_batch_id, request_count, submitted_at, ended_at, downloaded_at "
        f"FROM upstream_jobs WHERE upstream_batch_id IN ({marks(len(upstream_ids))}) "
        "ORDER BY submitted_at",
        upstream_ids,
    )
    for upstream_id, count, submitted, noticed, downloaded in jobs:
        end = ends[upstream_id]
        phase.jobs.append(
            f"job of {count} lines: submitted +{submitted - started:.1f} s, ended upstream "
            f"+{end - started:.1f} s, end noticed {noticed - end:+.2f} s after, results written "
            f"{downloaded - noticed:.2f} s after that"
        )


# -- report ---------------------------------------------------------------------------


def report_phase(phase: Phase, round_no: int) -> None:
    head = f"round {round_no} {phase.mode:8}"
    print(
        f"{head}: {phase.requests} requests, wall {phase.wall:.1f} s, router CPU "
        f"{phase.per_1000(phase.cpu):.3f} s / 1000 requests ({phase.watches} watcher rounds), "
        f"DB growth {phase.per_1000(phase.used_growth) / 1024:.0f} KiB / 1000 requests in "
        f"pages, {phase.per_1000(phase.file_growth) / 1024:.0f} KiB in files"
    )
    if phase.mode == "batch":
        print(
            f"{head}: upstream batchgate CPU {phase.per_1000(phase.upstream_cpu):.3f} s / 1000 "
            f"requests; {phase.upstream_batches} upstream batches; upstream end -> results "
            f"readable: per tenant batch p50 {percentile(phase.batch_latency, 0.5):.2f} s, "
            f"p99 {percentile(phase.batch_latency, 0.99):.2f} s; per request p50 "
            f"{percentile(phase.request_latency, 0.5):.2f} s, "
            f"p99 {percentile(phase.request_latency, 0.99):.2f} s"
        )
        for line in phase.jobs:
            print(f"{head}:   {line}")


def summary(phases: list[Phase], idle: Idle, args: argparse.Namespace) -> int:
    by_mode = {mode: [p for p in phases if p.mode == mode] for mode in MODES}
    batch = by_mode["batch"]
    print(f"\nsummary over {args.rounds} round(s) (medians of rounds; latencies pooled):")
    if batch:
        batch_lat = [x for p in batch for x in p.batch_latency]
        request_lat = [x for p in batch for x in p.request_latency]
        print(f"  upstream batches per round: {[p.upstream_batches for p in batch]}")
        print(
            f"  upstream end -> results readable, per tenant batch: p50 "
            f"{percentile(batch_lat, 0.5):.2f} s, p99 {percentile(batch_lat, 0.99):.2f} s; per "
            f"request: p50 {percentile(request_lat, 0.5):.2f} s, "
            f"p99 {percentile(request_lat, 0.99):.2f} s (goal < 5 s)"
        )
    print(
        f"  the idle router: {idle.per_second * 1000:.1f} ms CPU a second; one watcher round "
        f"({args.keys} lists of {math.ceil(args.batches / args.keys)} batches): "
        f"{idle.per_watch * 1000:.1f} ms"
    )
    if all(by_mode.values()):
        ratios(by_mode, idle)
    most = math.ceil(args.requests / args.job_size)
    if any(p.upstream_batches > most for p in batch):
        print(f"FAIL: more upstream batches than ceil(requests / job size) = {most}")
        return 1
    return 0


def ratios(by_mode: dict[str, list[Phase]], idle: Idle) -> None:
    def median(value: Any) -> dict[str, float]:
        return {m: statistics.median(value(p) for p in by_mode[m]) for m in MODES}

    cpu = median(lambda p: p.per_1000(p.cpu))
    unwatched = median(lambda p: p.per_1000(p.cpu - p.watches * idle.per_watch))
    wall = median(lambda p: p.wall)
    used = median(lambda p: p.per_1000(p.used_growth) / 1024)
    files = median(lambda p: p.per_1000(p.file_growth) / 1024)
    print(
        f"  router CPU s / 1000 requests: batch {cpu['batch']:.3f}, real-time "
        f"{cpu['realtime']:.3f}, batch / real-time = {cpu['batch'] / cpu['realtime']:.3f} "
        "(goal <= 1)"
    )
    print(
        f"  the same less the watcher's lists (rounds x their idle cost): batch "
        f"{unwatched['batch']:.3f}, real-time {unwatched['realtime']:.3f}, batch / real-time = "
        f"{unwatched['batch'] / unwatched['realtime']:.3f}"
    )
    print(
        f"  wall s: batch {wall['batch']:.1f}, real-time {wall['realtime']:.1f}, "
        f"batch / real-time = {wall['batch'] / wall['realtime']:.2f}"
    )
    print(
        f"  router DB growth KiB / 1000 requests, pages in use: batch {used['batch']:.0f}, "
        f"real-time {used['realtime']:.0f}, batch / real-time = "
        f"{used['batch'] / used['realtime']:.2f}; files: batch {files['batch']:.0f}, "
        f"real-time {files['realtime']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per mode per round")
    parser.add_argument("--batches", type=int, default=200, help="tenant batches they come in")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; each runs both modes")
    parser.add_argument("--keys", type=int, default=4, help="tenant keys the batches spread over")
    parser.add_argument(
        "--job-size",
        type=int,
        default=None,
        help="max_requests_per_job (default: half the requests, at most 10,000)",
    )
    parser.add_argument("--flush-after", type=float, default=30.0, help="flush_after_seconds")
    parser.add_argument(
        "--poll-seconds", type=float, default=1.0, help="the router's poll of an upstream job"
    )
    parser.add_argument("--watch-seconds", type=float, default=0.5, help="tenants' list period")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight to the fake")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the fake's latency")
    parser.add_argument("--timeout", type=float, default=900.0, help="per mode and round")
    parser.add_argument(
        "--modes",
        default="batch,realtime",
        help="which modes to run (a profile of one: batch or realtime alone; no ratios then)",
    )
    args = parser.parse_args()
    if args.job_size is None:
        args.job_size = max(1, min(10_000, math.ceil(args.requests / 2)))
    args.keys = max(1, min(args.keys, args.batches))

    print(
        f"{args.requests} requests in {args.batches} batches over {args.keys} keys, jobs of "
        f"{args.job_size}, poll {args.poll_seconds} s, fake latency {args.latency_ms} ms, "
        f"concurrency {args.concurrency}; load average {psutil.getloadavg()[0]:.2f}",
        flush=True,
    )
    modes = args.modes.split(",")
    if not modes or not set(modes) <= set(MODES):
        parser.error(f"--modes: a comma-separated list of {', '.join(MODES)}")
    phases: list[Phase] = []
    with servers(args) as running:
        print(f"router pid {running.router.popen.pid}", flush=True)
        for round_no in range(1, args.rounds + 1):
            # Alternate which mode goes first, so neither always runs on a
            # fresher database.
            order = ["batch", "realtime"] if round_no % 2 else ["realtime", "batch"]
            for mode in (m for m in order if m in modes):
                phase = run_phase(running, mode, round_no, args)
                phases.append(phase)
                report_phase(phase, round_no)
                sys.stdout.flush()
        idle = idle_costs(running, args)
    status = summary(phases, idle, args)
    print(f"load average after: {psutil.getloadavg()[0]:.2f}")
    sys.exit(status)


if __name__ == "__main__":
    main()
