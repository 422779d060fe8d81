"""Crash safety of provider batch routing (issue 19): the routing batchgate
is SIGKILLed at each step of its upstream jobs, ten times in all, and the
upstream (the fake's Files + Batches or Message Batches API) counts what it
made and billed.

The kills land on what the upstream saw, never on a timer:

* before create (OpenAI: after the upload): the fake holds every create
  without making anything (``create_hang_before``); the routing process is
  killed once a create has reached it;
* after create, before the id is recorded: the fake makes the batch (listed
  at once) and holds the reply (``create_delay_after_ms``); killed once the
  batch exists, while the job still records no batch;
* mid-download: output files and results stream in small chunks
  (``content_chunk_delay_ms``); killed once the job has written some of its
  rows (a group a second as the lines come) and more are on the way.

Then, counted on the upstream: one batch (OpenAI: and one input file) per
job, one billed line per request; and every tenant row succeeded with its
own answer, once. On SQLite the routing process is ``serve`` with its
worker; on PostgreSQL it is two ``batchgate worker`` processes beside
``serve --no-worker``, and each kill hits the worker that holds the job the
event belongs to (the other keeps working, and takes the job over once the
dead one's lease runs out).
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
import sqlalchemy as sa

from batchgate.domain import upstream_jobs as uj
from batchgate.store import sql, tables
from tests import harness
from tests.e2e import processes
from tests.fakes.upstream import RemoteUpstream, start_process

pytestmark = pytest.mark.slow

MODEL = "crash-batch"
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


@dataclasses.dataclass(frozen=True)
class Api:
    """One provider batch API as the routing model and the fake speak it."""

    backend: str
    create: str  # the fake's route kinds of a create and of a download
    download: str
    upstream_model: str

    @property
    def openai(self) -> bool:
        return self.backend == "openai_batch"


OPENAI = Api("openai_batch", "batches.create", "files.content", "gpt-4o-mini")
ANTHROPIC = Api(
    "anthropic_batch",
    "messages_batches.create",
    "messages_batches.results",
    "claude-haiku-4-5",
)


@dataclasses.dataclass
class Kill:
    step: str
    job_id: str
    process: str


class Scene:
    """The fake upstream (what it made, ``GET /_batches``, and was asked,
    ``GET /_calls``: batch routes under their route kind) beside the routing
    store, which says which job a request id is in."""

    def __init__(self, api: Api, remote: RemoteUpstream, store: sql.SqlJobStore) -> None:
        self.api = api
        self.remote = remote
        self.store = store
        self.http = httpx.Client(base_url=remote.base_url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def report(self) -> dict[str, Any]:
        response = self.http.get("/_batches")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    def calls(self, kind: str, since: int) -> list[dict[str, Any]]:
        return self.remote.calls(kind, since=since)

    def last_seq(self) -> int:
        calls = self.remote.calls()
        return int(calls[-1]["seq"]) if calls else 0

    def request_jobs(self) -> dict[str, str]:
        """Upstream custom_id (the request id) -> the job holding it."""
        R = tables.requests
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(R.c.id, R.c.upstream_job_id).where(R.c.upstream_job_id.is_not(None))
            ).all()
        return {str(request_id): job_id for request_id, job_id in rows}

    def job_of(self, batch: dict[str, Any], jobs: dict[str, str]) -> str | None:
        """The job an upstream batch was made for: its metadata (OpenAI),
        the job its requests are in (Anthropic: no metadata)."""
        if self.api.openai:
            job: str | None = (batch["metadata"] or {}).get("batchgate_job")
            return job
        return jobs.get(batch["custom_ids"][0]) if batch["custom_ids"] else None

    def batches_by_job(self, report: dict[str, Any]) -> dict[str | None, list[dict[str, Any]]]:
        jobs = self.request_jobs()
        by_job: dict[str | None, list[dict[str, Any]]] = collections.defaultdict(list)
        for batch in report["batches"]:
            by_job[self.job_of(batch, jobs)].append(batch)
        return by_job

    # -- the events a kill waits for: each lists the jobs it happened to
    def creates(self, since: int) -> list[str]:
        """Jobs whose create reached the upstream."""
        calls = self.calls(self.api.create, since)
        if self.api.openai:
            return [call["body"]["metadata"]["batchgate_job"] for call in calls]
        jobs = self.request_jobs()
        found = (jobs.get(call["body"]["custom_ids"][0]) for call in calls)
        return [job for job in found if job is not None]

    def created(self, since: int) -> list[str]:
        """Jobs whose create made its batch (its reply held)."""
        made = self.batches_by_job(self.report())
        return [job for job in self.creates(since) if made.get(job)]

    def downloading(self, since: int) -> list[str]:
        """Jobs whose results are part way down the wire, some of their rows
        written already (a group goes in once a second) and some to come:
        a download repeated after the kill meets both."""
        ids = [
            call["path"].split("/")[-2]
            for call in self.calls(self.api.download, since)
            if 1 <= call.get("sent", 0) < call["chunks"]
        ]
        report = self.report()
        jobs = self.request_jobs()
        found = []
        for batch in report["batches"]:
            if (batch["output_file_id"] if self.api.openai else batch["id"]) in ids:
                found.append(self.job_of(batch, jobs))
        return [job for job in found if job is not None and self.partly_written(job)]

    def row_states(self, job_id: str) -> collections.Counter[str]:
        """How many of the job's rows are in each state."""
        R = tables.requests
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(R.c.state, sa.func.count())
                .where(R.c.upstream_job_id == job_id)
                .group_by(R.c.state)
            ).all()
        return collections.Counter({state: count for state, count in rows})

    def partly_written(self, job_id: str) -> bool:
        states = self.row_states(job_id)
        return states["succeeded"] > 0 and states["running"] > 0


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


def write_config(tmp_path: Path, api: Api, upstream: RemoteUpstream) -> Path:
    return processes.write_config(
        tmp_path / "routing.toml",
        {
            MODEL: {
                "backend": api.backend,
                "base_url": upstream.openai_base_url if api.openai else upstream.base_url,
                "api_key": "sk-routing",
                "upstream_model": api.upstream_model,
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


EVENTS: dict[str, Callable[[Scene, int], list[str]]] = {
    "before_create": Scene.creates,
    "before_record": Scene.created,
    "mid_download": Scene.downloading,
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


def check_kill_point(step: str, scene: Scene, job_id: str) -> None:
    """The kill really landed where it was meant to (read after it)."""
    job = scene.store.get_job(job_id)
    assert job is not None, job_id
    made = scene.batches_by_job(scene.report()).get(job_id, [])
    if step == "before_create":
        # OpenAI: uploaded; Anthropic: the requests go in the create.
        assert job.state is (uj.JobState.UPLOADED if scene.api.openai else uj.JobState.ASSEMBLING)
        assert job.create_started_at is not None, job
        assert made == [], "a held create made a batch"
    elif step == "before_record":
        assert job.upstream_batch_id is None, job
        assert len(made) == 1, made
    else:
        assert job.state is uj.JobState.ENDED and job.downloaded_at is None, job
        # Some rows were written before the kill: the repeated download
        # meets lines already written (and writes them no second time).
        assert scene.row_states(job_id)["succeeded"] > 0, scene.row_states(job_id)


def kill_at(step: str, routing: Routing, scene: Scene, since: int) -> Kill:
    """Wait for the step's event on a job a running process holds, SIGKILL
    that process, and check the job stands where the kill was meant to be."""

    def observed() -> tuple[str, str] | None:
        for job_id in EVENTS[step](scene, since):
            job = scene.store.get_job(job_id)
            owner = None if job is None else job.lease_owner
            # A call a killed process sent as it died may arrive after it.
            if owner is not None and routing.routes(owner):
                return job_id, owner
        return None

    job_id, owner = harness.wait_until(observed, EVENT_SECONDS, f"the {step} event", 0.05)
    victim = routing.kill(owner)
    check_kill_point(step, scene, job_id)
    return Kill(step, job_id, victim)


def run_with_kills(routing: Routing, scene: Scene) -> list[Kill]:
    kills: list[Kill] = []
    for step in PLAN:
        if not kills or kills[-1].step != step:
            scene.remote.configure(**KNOBS[step])
        since = scene.last_seq()
        routing.start()
        kills.append(kill_at(step, routing, scene, since))
    scene.remote.configure(**KNOBS["finish"])
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


def check_upstream(scene: Scene, jobs: list[uj.UpstreamJob]) -> None:
    """Counted on the upstream: one batch (and one file) per job, each
    request in one batch and billed once."""
    report = scene.report()
    total = sum(BATCH_SIZES)
    sent = [job for job in jobs if job.upstream_batch_id is not None]
    assert sum(job.request_count for job in sent) == total
    by_job = scene.batches_by_job(report)
    assert {job: len(made) for job, made in by_job.items()} == {job.id: 1 for job in sent}
    for job in sent:
        (batch,) = by_job[job.id]
        assert batch["id"] == job.upstream_batch_id
        assert batch["state"] == "completed" and batch["succeeded"] == job.request_count
    if scene.api.openai:
        markers = collections.Counter(stored["filename"] for stored in report["files"])
        for job in sent:
            assert markers[uj.job_marker(job.id)] == 1, job.id
    lines = [custom_id for b in report["batches"] for custom_id in b["custom_ids"]]
    assert len(lines) == len(set(lines)) == total  # no request in two batches
    assert report["billed"] == dict.fromkeys(lines, 1)


@pytest.mark.parametrize("api", [OPENAI, ANTHROPIC], ids=lambda api: api.backend)
def test_sigkill_at_each_step_of_upstream_jobs_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str, upstream: RemoteUpstream, api: Api
) -> None:
    config = write_config(tmp_path, api, upstream)
    with contextlib.ExitStack() as stack:
        routing = Routing(stack, tmp_path, config, database_url)
        upstream.configure(**KNOBS["before_create"])
        routing.start()
        store = sql.SqlJobStore.open(database_url, migrate=False)
        stack.callback(store.close)
        scene = Scene(api, upstream, store)
        stack.callback(scene.close)
        http = stack.enter_context(processes.client(routing.port))
        batch_ids = submit(http)
        kills = run_with_kills(routing, scene)
        results = tenant_results(http, batch_ids)
        jobs = store.list_jobs(model=MODEL, limit=1000)
        check_upstream(scene, jobs)
    check_tenants(results, batch_ids)
    assert [kill.step for kill in kills] == list(PLAN)
    assert routing.restarts == len(PLAN)
    assert all(job.done for job in jobs)
    if routing.two_workers:  # each kill hit a worker, not the API
        assert all(kill.process.startswith("worker-") for kill in kills)
