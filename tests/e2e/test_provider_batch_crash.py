"""Crash safety of provider batch routing (issue 19): the routing batchgate
is SIGKILLed at each step of its upstream jobs, ten times in all, and the
upstream (the fake's Files + Batches API) counts what it made and billed.

The kills land on what the upstream saw, never on a timer:

* after upload, before create: the fake holds every create without making
  anything (``create_hang_before``); the routing process is killed once a
  create has reached it;
* after create, before the id is recorded: the fake makes the batch (listed
  at once) and holds the reply (``create_delay_after_ms``); killed once the
  batch exists, while the job still records no batch;
* mid-download: output files stream in small chunks
  (``content_chunk_delay_ms``); killed once some chunks of one went out.

Then, counted on the upstream: one batch (and one input file) per job, one
billed line per request; and every tenant row succeeded with its own
answer, once. On SQLite the routing process is ``serve`` with its worker;
on PostgreSQL it is two ``batchgate worker`` processes beside ``serve
--no-worker``, and each kill hits the worker that holds the job the event
belongs to (the other keeps working, and takes the job over once the dead
one's lease runs out).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchgate.domain import upstream_jobs as uj
from batchgate.store import sql
from tests import harness
from tests.e2e import processes
from tests.fakes.upstream import RemoteUpstream, start_process

pytestmark = pytest.mark.slow

MODEL = "gpt-crash-batch"
PER_JOB = 5
# Three tenant batches, 60 requests: twelve jobs, so every phase has jobs
# left to act on even when two workers each take one per event.
BATCH_SIZES = (17, 25, 18)
# The kills, in order: three before create, four between create and its
# record, three mid-download.
PLAN = ("before_create",) * 3 + ("before_record",) * 4 + ("mid_download",) * 3
# Patience for one event on a loaded two-core machine (a restart, a lease
# running out, a poll).
EVENT_SECONDS = 60
HELD_SECONDS = 120_000  # ms: a held create reply outlasts any kill
WORKER_STARTED = re.compile(r"worker (worker-[0-9a-f]+) started")


def text(batch: int, index: int) -> str:
    return f"tenant batch {batch} question {index}"


@dataclasses.dataclass
class Kill:
    step: str
    job_id: str
    process: str


class Upstream:
    """What the fake upstream made (``GET /_batches``) and was asked
    (``GET /_calls``, batch routes under their route kind)."""

    def __init__(self, remote: RemoteUpstream) -> None:
        self.remote = remote
        self.http = httpx.Client(base_url=remote.base_url, timeout=10)

    def report(self) -> dict[str, Any]:
        response = self.http.get("/_batches")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    def close(self) -> None:
        self.http.close()

    def calls(self, since: int) -> list[dict[str, Any]]:
        return self.remote.calls(since=since)

    def last_seq(self) -> int:
        calls = self.remote.calls()
        return int(calls[-1]["seq"]) if calls else 0


def job_of_output(report: dict[str, Any], file_id: str) -> str | None:
    for batch in report["batches"]:
        if batch["output_file_id"] == file_id:
            job: str | None = (batch["metadata"] or {}).get("batchgate_job")
            return job
    return None


def batches_of(report: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    return [b for b in report["batches"] if (b["metadata"] or {}).get("batchgate_job") == job_id]


class Routing:
    """The routing batchgate: ``serve`` with its worker (SQLite), or ``serve
    --no-worker`` and two ``batchgate worker`` processes (PostgreSQL).
    Started and restarted through one exit stack that kills what is left."""

    def __init__(
        self, stack: contextlib.ExitStack, tmp_path: Path, config: Path, database_url: str
    ) -> None:
        self.stack = stack
        self.tmp_path = tmp_path
        self.config = config
        self.database_url = database_url
        self.port = processes.free_port()
        self.two_workers = database_url.startswith("postgresql")
        self.serve: processes.Process | None = None
        self.workers: dict[str, processes.Process] = {}  # worker id -> process
        self.dead: set[str] = set()  # worker ids of the killed processes
        self.starts = 0

    @property
    def restarts(self) -> int:
        return self.starts - (3 if self.two_workers else 1)

    def start(self) -> None:
        """Everything up: serve (once on PostgreSQL, where it routes nothing),
        and the workers that are not running."""
        if self.serve is None or self.serve.popen.poll() is not None:
            extra = ("--no-worker",) if self.two_workers else ()
            self.serve = self.stack.enter_context(
                processes.serve(
                    self.config, self.tmp_path, self.port, *extra, database_url=self.database_url
                )
            )
            self.starts += 1
        while self.two_workers and len(self.workers) < 2:
            self._start_worker()

    def _start_worker(self) -> None:
        name = f"w{self.starts}"
        self.starts += 1
        process = self.stack.enter_context(
            processes.worker(
                self.config,
                self.tmp_path,
                name,
                "--log-level",
                "info",
                database_url=self.database_url,
            )
        )

        def started() -> str | None:
            if process.popen.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{process.output()}")
            match = WORKER_STARTED.search(process.output())
            return match.group(1) if match else None

        worker_id = harness.wait_until(started, EVENT_SECONDS, f"worker {name} to start", 0.1)
        self.workers[worker_id] = process

    def routes(self, owner: str | None) -> bool:
        """Whether ``owner`` (a job's lease owner) is a running process of
        ours: a live worker; on SQLite any owner but the killed ones (the
        one serve's worker id is learnt when it is killed)."""
        if self.two_workers:
            return owner in self.workers
        return owner is not None and owner not in self.dead

    def kill(self, owner: str) -> str:
        """SIGKILL the process that holds a job (its lease owner)."""
        self.dead.add(owner)
        if self.two_workers:
            self.workers.pop(owner).kill()
            return owner
        assert self.serve is not None
        self.serve.kill()
        return "serve"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("store_url_postgres")
        return url
    return f"sqlite:///{tmp_path / 'routing.db'}"


@pytest.fixture
def upstream() -> Iterator[RemoteUpstream]:
    with start_process() as remote:
        yield remote


def write_config(tmp_path: Path, upstream: RemoteUpstream) -> Path:
    return processes.write_config(
        tmp_path / "routing.toml",
        {
            MODEL: {
                "backend": "openai_batch",
                "base_url": upstream.openai_base_url,
                "api_key": "sk-routing",
                "upstream_model": "gpt-4o-mini",
                "max_requests_per_job": PER_JOB,
                "flush_after_seconds": 0.5,
                "poll_seconds": 0.2,
                "poll_max_seconds": 0.5,
                # A create or download the fake holds on a worker that was
                # not killed gives up in time and is looked up again.
                "timeout": 8,
            }
        },
        # Short leases: a job of a killed process goes to the next one soon.
        worker={
            "lease_seconds": 2,
            "heartbeat_seconds": 0.5,
            "sweep_seconds": 0.25,
            "poll_seconds": 0.05,
            "drain_seconds": 0.5,
        },
    )


def submit(http: httpx.Client) -> list[str]:
    ids = []
    for number, size in enumerate(BATCH_SIZES):
        body = processes.native_batch(
            size, lambda i, b=number: text(b, i), model=MODEL, id_prefix=f"b{number}-"
        )
        response = http.post("/v1/batches", json=body)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


# -- the events a kill waits for: each lists the jobs it happened to ---------
Event = Callable[[Upstream, int], list[str]]


def create_held(upstream: Upstream, since: int) -> list[str]:
    """Creates the fake holds without making anything (after upload)."""
    return [
        call["body"]["metadata"]["batchgate_job"]
        for call in upstream.calls(since)
        if call["fingerprint"] == "batches.create"
    ]


def created_unanswered(upstream: Upstream, since: int) -> list[str]:
    """Creates whose batch exists upstream while their reply is held."""
    report = upstream.report()
    return [job for job in create_held(upstream, since) if batches_of(report, job)]


def downloading(upstream: Upstream, since: int) -> list[str]:
    """Output files part way down the wire, with chunks still to come."""
    files = [
        call["path"].split("/")[3]
        for call in upstream.calls(since)
        if call["fingerprint"] == "files.content"
        and 2 <= call.get("sent", 0) <= call["chunks"] // 2
    ]
    report = upstream.report()
    return [job for job in (job_of_output(report, file_id) for file_id in files) if job]


EVENTS: dict[str, Event] = {
    "before_create": create_held,
    "before_record": created_unanswered,
    "mid_download": downloading,
}
# What the fake does in each phase (the others' knobs off).
KNOBS: dict[str, dict[str, Any]] = {
    "before_create": {"create_hang_before": True},
    "before_record": {"create_hang_before": False, "create_delay_after_ms": HELD_SECONDS},
    "mid_download": {
        "create_delay_after_ms": 0,
        "content_chunk_delay_ms": 150,
        "content_chunk_bytes": 160,
    },
    "finish": {"content_chunk_delay_ms": 0},
}


def check_kill_point(
    step: str, job: uj.UpstreamJob | None, report: dict[str, Any], job_id: str
) -> None:
    """The kill really landed where it was meant to (read after it)."""
    assert job is not None, job_id
    if step == "before_create":
        assert job.state is uj.JobState.UPLOADED, job
        assert batches_of(report, job_id) == [], "a held create made a batch"
    elif step == "before_record":
        assert job.upstream_batch_id is None, job
        assert len(batches_of(report, job_id)) == 1
    else:
        assert job.state is uj.JobState.ENDED and job.downloaded_at is None, job


def kill_at(
    step: str, routing: Routing, upstream: Upstream, store: sql.SqlJobStore, since: int
) -> Kill:
    """Wait for the step's event on a job a running process holds, SIGKILL
    that process, and check the job stands where the kill was meant to be."""
    event = EVENTS[step]

    def observed() -> tuple[str, str] | None:
        for job_id in event(upstream, since):
            job = store.get_job(job_id)
            owner = None if job is None else job.lease_owner
            # A call a killed process sent as it died may arrive after it.
            if owner is not None and routing.routes(owner):
                return job_id, owner
        return None

    job_id, owner = harness.wait_until(observed, EVENT_SECONDS, f"the {step} event", 0.05)
    victim = routing.kill(owner)
    check_kill_point(step, store.get_job(job_id), upstream.report(), job_id)
    return Kill(step, job_id, victim)


def run_with_kills(routing: Routing, upstream: Upstream, store: sql.SqlJobStore) -> list[Kill]:
    kills: list[Kill] = []
    for step in PLAN:
        if not kills or kills[-1].step != step:
            upstream.remote.configure(**KNOBS[step])
        since = upstream.last_seq()
        routing.start()
        kills.append(kill_at(step, routing, upstream, store, since))
    upstream.remote.configure(**KNOBS["finish"])
    routing.start()
    return kills


def tenant_results(http: httpx.Client, batch_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    results = {}
    for batch_id in batch_ids:
        ended = processes.wait_for(
            http, batch_id, lambda b: b["status"] in processes.ENDED, timeout=3 * EVENT_SECONDS
        )
        assert ended["status"] == "completed", ended
        size = ended["request_counts"]["total"]
        assert ended["request_counts"] == {"total": size, "completed": size, "failed": 0}
        body = http.get(f"/v1/batches/{batch_id}").text
        results[batch_id] = [json.loads(line) for line in body.splitlines()]
    return results


def check_tenants(results: dict[str, list[dict[str, Any]]], batch_ids: list[str]) -> None:
    """0 lost, 0 duplicated: each custom_id once, succeeded, with its answer."""
    for number, batch_id in enumerate(batch_ids):
        lines = results[batch_id]
        per_id = collections.Counter(line["custom_id"] for line in lines)
        assert set(per_id) == {f"b{number}-{i}" for i in range(BATCH_SIZES[number])}
        assert max(per_id.values()) == 1
        for line in lines:
            assert line["result"]["type"] == "succeeded", line
            index = int(line["custom_id"].split("-")[1])
            content = line["result"]["message"]["content"]
            assert content[0]["text"] == f"echo: {text(number, index)}", line


def check_upstream(report: dict[str, Any], jobs: list[uj.UpstreamJob]) -> None:
    """Counted on the upstream: one file and one batch per job, each request
    in one batch and billed once."""
    total = sum(BATCH_SIZES)
    sent = [job for job in jobs if job.upstream_batch_id is not None]
    assert sum(job.request_count for job in sent) == total
    per_job = collections.Counter(
        (b["metadata"] or {}).get("batchgate_job") for b in report["batches"]
    )
    assert per_job == collections.Counter({job.id: 1 for job in sent})
    for job in sent:
        (batch,) = batches_of(report, job.id)
        assert batch["id"] == job.upstream_batch_id
        assert batch["state"] == "completed" and batch["succeeded"] == job.request_count
    markers = collections.Counter(stored["filename"] for stored in report["files"])
    for job in sent:
        assert markers[uj.job_marker(job.id)] == 1, job.id
    lines = [custom_id for b in report["batches"] for custom_id in b["custom_ids"]]
    assert len(lines) == len(set(lines)) == total  # no request in two batches
    assert report["billed"] == dict.fromkeys(lines, 1)


def test_sigkill_at_each_step_of_upstream_jobs_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str, upstream: RemoteUpstream
) -> None:
    view = Upstream(upstream)
    config = write_config(tmp_path, upstream)
    with contextlib.ExitStack() as stack:
        stack.callback(view.close)
        routing = Routing(stack, tmp_path, config, database_url)
        upstream.configure(**KNOBS["before_create"])
        routing.start()
        store = sql.SqlJobStore.open(database_url, migrate=False)
        stack.callback(store.close)
        http = stack.enter_context(processes.client(routing.port))
        batch_ids = submit(http)
        kills = run_with_kills(routing, view, store)
        results = tenant_results(http, batch_ids)
        jobs = store.list_jobs(model=MODEL, limit=1000)
        report = view.report()
    check_tenants(results, batch_ids)
    check_upstream(report, jobs)
    assert [kill.step for kill in kills] == list(PLAN)
    assert routing.restarts == len(PLAN)
    assert all(job.done for job in jobs)
    if routing.two_workers:  # each kill hit a worker, not the API
        assert all(kill.process.startswith("worker-") for kill in kills)
