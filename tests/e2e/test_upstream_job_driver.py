"""The upstream-job driver (worker/upstream_jobs/) end to end inside one
process: the worker on the in-memory store, the real provider-batch clients
(built by the registry, as the server builds them), and the fake upstream's
OpenAI Files + Batches and Anthropic Message Batches routes on 127.0.0.1
(a socket: an e2e test, not part of ``make test-fast``).

What the upstream saw is read from the fake's own ledger (``billed``: the
successful lines it delivered per custom_id, across all its batches), so
"none ran twice" is counted where the money is spent."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from batchgate import composition, config, testing
from batchgate.backends import registry
from batchgate.canonical import chat
from batchgate.dialects import message_results, openai
from batchgate.domain import batch as bm
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import BatchStatus, RequestState
from batchgate.worker.loop import Worker
from tests.contract import builders
from tests.fakes.upstream import FakeUpstream
from tests.unit import worker_kit as kit
from tests.unit.worker_kit import MODEL

OPENAI = "openai_batch"
ANTHROPIC = "anthropic_batch"
# Per million tokens: a token costs 0.5 USD in and 1 USD out at the batch
# price, so costs are plain numbers.
PRICE = {"input": 1_000_000.0, "output": 2_000_000.0}
# Jobs flushed, polled and retried within milliseconds.
FAST: dict[str, Any] = {
    "flush_after_seconds": 0.05,
    "poll_seconds": 0.02,
    "poll_max_seconds": 0.05,
    "sync_fallback_before": 60.0,
    "timeout": 2.0,
}


# ``fake``: the module's fake upstream, reset for each test (tests/conftest.py).
@pytest.fixture(scope="module")
def realtime_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def realtime(realtime_server: FakeUpstream) -> FakeUpstream:
    realtime_server.reset()
    return realtime_server


def entry(fake: FakeUpstream, kind: str = OPENAI, **options: Any) -> config.ModelConfig:
    base_url = fake.openai_base_url if kind == OPENAI else fake.base_url
    return config.ModelConfig(
        name=MODEL,
        backend=kind,
        base_url=base_url,
        api_key="k",
        price=config.Price(**PRICE),
        **{**FAST, **options},
    )


@contextlib.asynccontextmanager
async def driving(
    store: testing.MemoryJobStore, model: config.ModelConfig, **worker: Any
) -> AsyncIterator[Worker]:
    """The worker, wired as the server wires it, serving ``model`` for the
    block (metrics on: the operator's costs are part of what is checked)."""
    settings = kit.settings(**worker).model_copy(
        update={"models": {MODEL: model}, "metrics": config.MetricsSettings(enabled=True)}
    )
    backend = registry.create(model)
    try:
        async with kit.running(composition.build_worker(settings, store, {MODEL: backend})) as w:
            yield w
    finally:
        await backend.aclose()


def submit(
    store: testing.MemoryJobStore, texts: list[str], *, owner: str = "key_a", window: float = 3600
) -> bm.Batch:
    batch = builders.new_batch(len(texts), owner=owner, window=window)
    store.create_batch(batch, [bm.NewRequest(text, MODEL, kit.params(text)) for text in texts])
    return batch


def rows(store: testing.MemoryJobStore, *batches: bm.Batch) -> list[Any]:
    """The stored rows of ``batches`` (the memory store's own records: the
    route and the job are not read back by any role)."""
    wanted = {batch.id for batch in batches}
    return sorted(
        (row for row in store._requests.values() if row.batch_id in wanted),
        key=lambda row: row.id,
    )


def all_ended(store: testing.MemoryJobStore, *batches: bm.Batch) -> Callable[[], bool]:
    return lambda: all(kit.status(store, batch).is_ended for batch in batches)


def billed(fake: FakeUpstream) -> dict[str, int]:
    counts: dict[str, int] = fake.batches()["billed"]
    return counts


def upstream_batches(fake: FakeUpstream) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = fake.batches()["batches"]
    return found


def metric(worker: Worker, name: str, **labels: str) -> float:
    """The sum of a worker counter's samples that carry ``labels``."""
    report = worker.metrics.samples() or {}
    return sum(
        value
        for family in report.values()
        for sample, sample_labels, value in family["samples"]
        if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def assert_served_once(fake: FakeUpstream, store: testing.MemoryJobStore, *batches: bm.Batch):
    """Every row succeeded, and the upstream billed exactly one line for each."""
    served = rows(store, *batches)
    assert {row.state for row in served} == {RequestState.SUCCEEDED}
    assert billed(fake) == {str(row.id): 1 for row in served}


async def wait_upstream(fake: FakeUpstream, count: int = 1) -> list[dict[str, Any]]:
    await kit.eventually(lambda: len(upstream_batches(fake)) >= count)
    return upstream_batches(fake)


# -- coalescing and splitting -------------------------------------------------
@pytest.mark.parametrize("kind", [OPENAI, ANTHROPIC])
async def test_two_tenants_batches_go_up_as_one_job(fake: FakeUpstream, kind: str) -> None:
    store = testing.MemoryJobStore()
    first = submit(store, ["a one", "a two", "a three"], owner="key_a")
    second = submit(store, ["b one", "b two"], owner="key_b")
    async with driving(store, entry(fake, kind)) as worker:
        await kit.eventually(all_ended(store, first, second))
    (upstream,) = upstream_batches(fake)
    served = rows(store, first, second)
    # One upstream batch; it knew the rows by request id, never by the
    # tenants' custom_ids.
    assert sorted(upstream["custom_ids"]) == sorted(str(row.id) for row in served)
    assert_served_once(fake, store, first, second)
    for row in served:
        reply = chat.ChatResponse.model_validate(row.result)
        assert reply.text() == f"echo: {row.custom_id}"
        assert reply.model == MODEL
        assert row.route == uj.Path.BATCH
        assert row.cost > 0
    (job,) = store.list_jobs()
    assert (job.state, job.end_status, job.request_count) == (
        uj.JobState.ENDED,
        uj.EndStatus.COMPLETED,
        5,
    )
    assert job.done and {row.upstream_job_id for row in served} == {job.id}
    assert [j.id for j in store.jobs_for_batch(first.id)] == [job.id]
    assert metric(worker, "batchgate_upstream_jobs_total", end_status="completed") == 1
    tenant_billed = sum(row.cost for row in served)
    assert metric(worker, "batchgate_upstream_cost_usd_total", path="batch") == pytest.approx(
        tenant_billed
    )
    assert metric(worker, "batchgate_cost_usd_total") == pytest.approx(tenant_billed)
    assert metric(worker, "batchgate_upstream_dropped_cost_usd_total") == 0


async def test_a_batch_over_the_job_limit_is_split(fake: FakeUpstream) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(10)])
    async with driving(store, entry(fake, max_requests_per_job=4)):
        await kit.eventually(all_ended(store, batch))
    sizes = sorted(len(upstream["custom_ids"]) for upstream in upstream_batches(fake))
    assert sizes == [2, 4, 4]  # ceil(10 / 4) jobs
    assert_served_once(fake, store, batch)
    assert kit.status(store, batch) is BatchStatus.COMPLETED


@pytest.mark.parametrize("kind", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("how", ["created", "adopted"])
async def test_a_submitted_jobs_rows_show_as_generating(
    fake: FakeUpstream, kind: str, how: str
) -> None:
    """Not "claimed", which tells the batch page they wait for a call slot."""
    store = testing.MemoryJobStore()
    batch = submit(store, ["g1", "g2", "g3"])
    timeout = 2.0
    if how == "adopted":  # the create's answer is lost: its batch is found
        fake.configure(create_delay_after_ms=400)
        timeout = 0.15
    fake.configure(hold=True)
    async with driving(store, entry(fake, kind, timeout=timeout)):
        await kit.eventually(
            lambda: [job.state for job in store.list_jobs()] == [uj.JobState.SUBMITTED]
        )
        # (Marked just after the job records its batch.)
        await kit.eventually(lambda: store.tally(batch.id).generating == 3)
        tally = store.tally(batch.id)
        assert tally.count(RequestState.RUNNING) == 3 and tally.claimed == 0
        if how == "adopted":  # the create failed (its answer came too late)
            assert store.list_jobs()[0].last_error
    assert len(upstream_batches(fake)) == 1


# -- a batch that ends without every answer -----------------------------------
@pytest.mark.parametrize("kind", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("end", ["failed", "expired"])
async def test_unfinished_rows_of_a_failed_or_expired_job_run_again_once(
    fake: FakeUpstream, kind: str, end: str
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(5)])
    fake.configure(hold=True)
    async with driving(store, entry(fake, kind)):
        (first,) = await wait_upstream(fake)
        fake.configure(hold=False)  # the job its unfinished rows go into runs
        fake.batch_control(first["id"], end=end, done=2)
        await kit.eventually(all_ended(store, batch))
    assert_served_once(fake, store, batch)
    again = [upstream for upstream in upstream_batches(fake) if upstream["id"] != first["id"]]
    assert [len(upstream["custom_ids"]) for upstream in again] == [3]
    if kind == OPENAI:
        # (A Message Batch only ever "ends": the rows it did not answer come
        # back errored with a retryable api_error, or expired.)
        statuses = sorted(job.end_status or "" for job in store.list_jobs())
        assert statuses == sorted(["completed", end])
    # Rows an expired batch never ran go again without using up an attempt;
    # a failed batch may have failed for its input, so that counts.
    attempts = sorted(row.attempts for row in rows(store, batch))
    assert attempts == ([1] * 5 if end == "expired" else [1, 1, 2, 2, 2])


async def test_a_batch_the_upstream_keeps_failing_errors_its_rows(fake: FakeUpstream) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["a", "b"])
    fake.configure(hold=True)
    async with driving(store, entry(fake), max_attempts=2):
        for count in (1, 2):
            upstream = (await wait_upstream(fake, count))[-1]
            fake.batch_control(upstream["id"], end="failed", done=0)
        await kit.eventually(all_ended(store, batch))
    for row in rows(store, batch):
        assert row.state is RequestState.ERRORED and row.attempts == 2
        assert row.error is not None and "upstream batch failed" in row.error.message
    assert len(upstream_batches(fake)) == 2


async def test_output_lines_out_of_order_or_missing(fake: FakeUpstream) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(8)])
    fake.configure(shuffle_output=True, drop_output_lines=3)
    async with driving(store, entry(fake)):
        await kit.eventually(all_ended(store, batch))
    assert_served_once(fake, store, batch)
    # The three lines left out went up again, in a second job.
    assert sorted(len(b["custom_ids"]) for b in upstream_batches(fake)) == [3, 8]


async def test_rows_show_as_a_slow_download_streams_in(fake: FakeUpstream) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(8)])
    # The output file comes down the wire a small chunk at a time (~2 s).
    fake.configure(content_chunk_delay_ms=100, content_chunk_bytes=200)

    def partly_written() -> bool:
        (job,) = store.list_jobs()
        states = {row.state for row in rows(store, batch)}
        downloading = job.state is uj.JobState.ENDED and job.downloaded_at is None
        return downloading and {RequestState.SUCCEEDED, RequestState.RUNNING} <= states

    async with driving(store, entry(fake)):
        await kit.eventually(lambda: len(store.list_jobs()) == 1)
        # Rows written while the rest of the file is still on its way.
        await kit.eventually(partly_written, timeout=10)
        await kit.eventually(all_ended(store, batch), timeout=10)
    assert_served_once(fake, store, batch)


# -- refusals as too large ----------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "mode"), [(OPENAI, "create"), (OPENAI, "fail"), (ANTHROPIC, "create")]
)
async def test_a_job_refused_as_too_large_is_split_until_it_fits(
    fake: FakeUpstream, kind: str, mode: str
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(8)])
    fake.configure(max_batch_requests=3, token_limit_mode=mode)
    async with driving(store, entry(fake, kind, max_requests_per_job=8)) as worker:
        await kit.eventually(all_ended(store, batch))
    assert_served_once(fake, store, batch)
    # The job of 8 refused, then those of 4 (both went up before the first
    # came back), then jobs of 2 fit.
    failed = [job for job in store.list_jobs() if job.end_status is uj.EndStatus.FAILED]
    assert sorted(job.request_count for job in failed) == [4, 4, 8]
    assert all("too large" in (job.last_error or "") for job in failed)
    assert metric(worker, "batchgate_upstream_job_refusals_total") == len(failed)
    completed = [job for job in store.list_jobs() if job.end_status is uj.EndStatus.COMPLETED]
    assert sorted(job.request_count for job in completed) == [2, 2, 2, 2]


# -- upstream faults on a step ------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "poll", "download"),
    [
        (OPENAI, "batches.get", "files.content"),
        (ANTHROPIC, "messages_batches.get", "messages_batches.results"),
    ],
)
async def test_5xx_and_timeouts_on_poll_and_download_are_retried(
    fake: FakeUpstream, kind: str, poll: str, download: str
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(4)])
    hang = {"kind": "hang", "hang_seconds": 1.0}
    fake.script_route(poll, "500", hang, "503")
    fake.script_route(download, "502", hang)
    async with driving(store, entry(fake, kind, timeout=0.2)):
        await kit.eventually(all_ended(store, batch))
    assert_served_once(fake, store, batch)
    assert len(upstream_batches(fake)) == 1
    assert fake.configure()["route_faults"] == {poll: [], download: []}  # all used up
    (job,) = store.list_jobs()
    assert job.last_error  # the last failed step is on the record


@pytest.mark.parametrize("kind", [OPENAI, ANTHROPIC])
async def test_a_create_whose_answer_is_lost_is_found_not_made_twice(
    fake: FakeUpstream, kind: str
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(3)])
    # The batch exists upstream before the create answers, and the answer
    # comes after the client has given up on it.
    fake.configure(create_delay_after_ms=400)
    async with driving(store, entry(fake, kind, timeout=0.15)):
        await kit.eventually(all_ended(store, batch))
    assert len(upstream_batches(fake)) == 1
    assert_served_once(fake, store, batch)


async def test_an_upload_that_failed_after_storing_the_file_is_not_sent_twice(
    fake: FakeUpstream,
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(3)])
    fake.script_route("files.upload", {"status": 500, "after": True})
    async with driving(store, entry(fake)):
        await kit.eventually(all_ended(store, batch))
    assert len(fake.batches()["files"]) == 1 + 1  # the input, once; the output
    assert_served_once(fake, store, batch)


async def test_an_upstream_that_keeps_refusing_a_job_errors_its_rows(
    fake: FakeUpstream,
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["a", "b"])
    fake.script_route("files.upload", *["400"] * 5)  # the worker's max_attempts
    async with driving(store, entry(fake)):
        await kit.eventually(all_ended(store, batch))
    for row in rows(store, batch):
        assert row.state is RequestState.ERRORED
        assert row.error is not None and row.error.status_code == 400
    (job,) = store.list_jobs()
    assert job.end_status is uj.EndStatus.FAILED and "given up" in (job.last_error or "")
    assert upstream_batches(fake) == []


async def test_a_draining_worker_hands_its_jobs_to_the_next(fake: FakeUpstream) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(3)])
    fake.configure(hold=True)
    model = entry(fake)
    async with driving(store, model) as first:
        (upstream,) = await wait_upstream(fake)
        await kit.eventually(lambda: store.list_jobs()[0].state is uj.JobState.SUBMITTED)
    (job,) = store.list_jobs()
    assert job.lease_owner is None  # free for another worker at once
    fake.batch_control(upstream["id"], end="completed")
    async with driving(store, model) as second:
        await kit.eventually(all_ended(store, batch))
    assert first.worker_id != second.worker_id
    assert len(upstream_batches(fake)) == 1
    assert_served_once(fake, store, batch)


async def test_a_job_is_leased_for_the_workers_lease_seconds(fake: FakeUpstream) -> None:
    """Another worker takes a crashed worker's job over once this lapses."""
    store = testing.MemoryJobStore()
    submit(store, ["a"])
    fake.configure(hold=True)
    started = time.time()
    async with driving(store, entry(fake), lease_seconds=1234.0) as worker:
        await kit.eventually(
            lambda: [job.state for job in store.list_jobs()] == [uj.JobState.SUBMITTED]
        )
        (job,) = store.list_jobs()
        seen = time.time()
        assert job.lease_owner == worker.worker_id and job.lease_expires_at is not None
        assert started + 1234.0 <= job.lease_expires_at <= seen + 1234.0


# -- cancel -------------------------------------------------------------------
async def test_a_job_whose_rows_are_all_cancelled_is_cancelled_upstream(
    fake: FakeUpstream,
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, [f"q{i}" for i in range(4)])
    fake.configure(hold=True)
    async with driving(store, entry(fake)) as worker:
        (upstream,) = await wait_upstream(fake)
        await kit.eventually(lambda: store.list_jobs()[0].state is uj.JobState.SUBMITTED)
        fake.batch_control(upstream["id"], progress=2)  # two lines ran: paid for
        store.cancel_batch(batch.id, batch.owner, time.time())
        await kit.eventually(lambda: store.list_jobs()[0].done)
    assert {row.state for row in rows(store, batch)} == {RequestState.CANCELED}
    (upstream,) = upstream_batches(fake)
    assert upstream["state"] == "cancelled"
    (job,) = store.list_jobs()
    assert job.end_status is uj.EndStatus.CANCELLED and job.cancel_requested_at is not None
    paid = metric(worker, "batchgate_upstream_cost_usd_total", path="batch")
    assert paid > 0
    assert metric(worker, "batchgate_upstream_dropped_cost_usd_total") == pytest.approx(paid)
    assert metric(worker, "batchgate_cost_usd_total") == 0


async def test_a_batch_that_ends_as_it_is_cancelled_is_read_not_cancelled_again(
    fake: FakeUpstream,
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["x1", "x2"])
    fake.configure(hold=True)
    # The provider will not cancel a batch that has just completed.
    fake.script_route("batches.cancel", {"status": 400, "message": "batch completed"})
    async with driving(store, entry(fake)) as worker:
        (upstream,) = await wait_upstream(fake)
        await kit.eventually(lambda: store.list_jobs()[0].state is uj.JobState.SUBMITTED)
        store.cancel_batch(batch.id, batch.owner, time.time())
        await kit.eventually(lambda: store.list_jobs()[0].cancel_requested_at is not None)
        fake.batch_control(upstream["id"], end="completed")
        await kit.eventually(lambda: store.list_jobs()[0].done)
    (job,) = store.list_jobs()
    assert job.end_status is uj.EndStatus.COMPLETED
    assert {row.state for row in rows(store, batch)} == {RequestState.CANCELED}
    paid = metric(worker, "batchgate_upstream_cost_usd_total", path="batch")
    assert paid > 0
    assert metric(worker, "batchgate_upstream_dropped_cost_usd_total") == pytest.approx(paid)


async def test_one_tenant_cancelling_leaves_the_others_rows_in_the_job(
    fake: FakeUpstream,
) -> None:
    store = testing.MemoryJobStore()
    kept = submit(store, ["k1", "k2"], owner="key_a")
    gone = submit(store, ["g1", "g2"], owner="key_b")
    fake.configure(hold=True)
    async with driving(store, entry(fake)) as worker:
        (upstream,) = await wait_upstream(fake)
        await kit.eventually(lambda: store.list_jobs()[0].state is uj.JobState.SUBMITTED)
        store.cancel_batch(gone.id, gone.owner, time.time())
        fake.batch_control(upstream["id"], end="completed")
        await kit.eventually(all_ended(store, kept))
    assert upstream_batches(fake)[0]["state"] == "completed"
    assert {row.state for row in rows(store, kept)} == {RequestState.SUCCEEDED}
    assert {row.state for row in rows(store, gone)} == {RequestState.CANCELED}
    paid = metric(worker, "batchgate_upstream_cost_usd_total", path="batch")
    tenant_billed = sum(row.cost for row in rows(store, kept))
    dropped = metric(worker, "batchgate_upstream_dropped_cost_usd_total")
    assert dropped > 0 and paid == pytest.approx(tenant_billed + dropped)


# -- deadline fallback --------------------------------------------------------
async def test_rows_whose_window_runs_short_are_served_realtime(
    fake: FakeUpstream, realtime: FakeUpstream
) -> None:
    store = testing.MemoryJobStore()
    # The short batch reaches its fallback point a second after it was
    # created; the long one has an hour more.
    short = submit(store, ["s1", "s2"], owner="key_a", window=3600)
    long = submit(store, ["l1", "l2"], owner="key_b", window=7200)
    fake.configure(hold=True)
    model = entry(
        fake,
        sync_fallback_before=3599.0,
        realtime={"backend": "openai_compatible", "base_url": realtime.openai_base_url},
    )
    async with driving(store, model) as worker:
        (first,) = await wait_upstream(fake)
        fake.configure(hold=False)  # only the first job is held
        await kit.eventually(all_ended(store, short, long))
    assert {row.route for row in rows(store, short)} == {uj.Path.REALTIME}
    assert {row.route for row in rows(store, long)} == {uj.Path.BATCH}
    assert {row.state for row in rows(store, short, long)} == {RequestState.SUCCEEDED}
    # Each result line says the path that served it, in every dialect's shape.
    for batch, path in ((short, "realtime"), (long, "batch")):
        results = list(store.iter_results(batch.id))
        assert [message_results.result_line(r)["served_by"] for r in results] == [path] * 2
        assert [openai.result_line(batch, r)["served_by"] for r in results] == [path] * 2
    assert sorted(call["fingerprint"] for call in realtime.calls()) == ["s1", "s2"]
    states = {b["id"]: b["state"] for b in upstream_batches(fake)}
    assert states.pop(first["id"]) == "cancelled"
    assert list(states.values()) == ["completed"]  # the long batch's rows, again
    batch_cost = sum(row.cost for row in rows(store, long))
    realtime_cost = sum(row.cost for row in rows(store, short))
    assert metric(worker, "batchgate_upstream_cost_usd_total", path="batch") == pytest.approx(
        batch_cost
    )
    assert metric(worker, "batchgate_upstream_cost_usd_total", path="realtime") == pytest.approx(
        2 * realtime_cost
    )
    # The tenants are billed the batch price on either path.
    billed = "batchgate_tenant_billed_usd_total"
    assert metric(worker, billed, path="batch") == pytest.approx(batch_cost)
    assert metric(worker, billed, path="realtime") == pytest.approx(realtime_cost)
    assert realtime_cost > 0


async def test_rows_already_inside_the_fallback_window_never_enter_a_job(
    fake: FakeUpstream, realtime: FakeUpstream
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["now1", "now2"], window=600)
    model = entry(
        fake,
        sync_fallback_before=3600.0,
        realtime={"backend": "openai_compatible", "base_url": realtime.openai_base_url},
    )
    async with driving(store, model):
        await kit.eventually(all_ended(store, batch))
    assert {row.route for row in rows(store, batch)} == {uj.Path.REALTIME}
    assert {row.state for row in rows(store, batch)} == {RequestState.SUCCEEDED}
    assert upstream_batches(fake) == []
    assert len(realtime.calls()) == 2


# -- the provider's copies of a done job ---------------------------------------
def files_at_provider(fake: FakeUpstream) -> dict[str, bool]:
    """Every file the fake was given or made: id -> deleted."""
    return {stored["id"]: stored["deleted"] for stored in fake.batches()["files"]}


@pytest.mark.parametrize("delete_files", [True, False])
async def test_a_done_jobs_files_are_deleted_at_the_provider(
    fake: FakeUpstream, delete_files: bool
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["fine", "refused"])
    fake.script_for("refused", "400")  # its line goes to the error file
    async with driving(store, entry(fake, delete_files=delete_files)):
        await kit.eventually(all_ended(store, batch))
        if delete_files:
            await kit.eventually(lambda: all(files_at_provider(fake).values()))
    (job,) = store.list_jobs()
    assert job.done
    made = {job.upstream_file_id, job.output_file_id, job.error_file_id}
    assert None not in made and len(made) == 3
    assert files_at_provider(fake) == dict.fromkeys(made, delete_files)
    assert len(fake.calls("files.delete")) == (3 if delete_files else 0)
    states = sorted(row.state for row in rows(store, batch))
    assert states == sorted([RequestState.SUCCEEDED, RequestState.ERRORED])


async def test_files_the_provider_will_not_delete_are_left_after_three_tries(
    fake: FakeUpstream,
) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["a", "b"])
    fake.script_route("files.delete", *["503"] * 10)
    async with driving(store, entry(fake)):
        await kit.eventually(all_ended(store, batch))
        await kit.eventually(lambda: len(fake.calls("files.delete")) >= 6)
    # Input and output, three times each; then left (logged), the job done.
    assert len(fake.calls("files.delete")) == 6
    assert len(fake.configure()["route_faults"]["files.delete"]) == 4
    assert files_at_provider(fake) and not any(files_at_provider(fake).values())
    (job,) = store.list_jobs()
    assert job.done and job.end_status is uj.EndStatus.COMPLETED
    assert_served_once(fake, store, batch)


async def test_an_anthropic_batch_is_kept_after_its_job(fake: FakeUpstream) -> None:
    store = testing.MemoryJobStore()
    batch = submit(store, ["a"])
    async with driving(store, entry(fake, ANTHROPIC)):
        await kit.eventually(all_ended(store, batch))
    (upstream,) = upstream_batches(fake)
    assert not upstream["deleted"] and fake.calls("messages_batches.delete") == []
