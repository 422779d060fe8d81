"""The worker on the in-memory store with scripted backends: claim, run,
record; retries; lease loss; drain; fairness; the concurrency cap."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from batchgate import canonical, testing
from batchgate.canonical import chat, embeddings
from batchgate.domain import batch as bm
from batchgate.domain.failures import ErrorType
from batchgate.domain.states import BatchStatus, RequestState
from tests.unit import worker_kit as kit
from tests.unit.worker_kit import MODEL


async def test_claimed_requests_are_run_and_their_replies_recorded() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["one", "two", "three"])
    backend = testing.FakeBackend()
    async with kit.running(kit.worker_for(store, {MODEL: backend})):
        await kit.eventually(kit.ended(store, batch))
    assert kit.status(store, batch) is BatchStatus.COMPLETED
    rows = kit.results(store, batch)
    replies = {
        cid: chat.ChatResponse.model_validate(row.result).text() for cid, row in rows.items()
    }
    assert replies == {"one": "one", "two": "two", "three": "three"}


async def test_a_reply_carries_the_model_name_the_client_asked_for() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["x"])
    backend = testing.FakeBackend(testing.sequence(testing.reply(model="upstream-alias")))
    async with kit.running(kit.worker_for(store, {MODEL: backend})):
        await kit.eventually(kit.ended(store, batch))
    row = kit.results(store, batch)["x"]
    assert row.result is not None and row.result["model"] == MODEL


async def test_only_requests_for_configured_models_are_claimed() -> None:
    store = testing.MemoryJobStore()
    mine = kit.submit(store, ["a"])
    theirs = kit.submit(store, ["b"], model="elsewhere")
    async with kit.running(kit.worker_for(store, {MODEL: testing.FakeBackend()})):
        await kit.eventually(kit.ended(store, mine))
    assert kit.state_of(store, theirs, "b") is RequestState.QUEUED


async def test_a_retryable_failure_is_retried_until_it_succeeds() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["x"])
    backend = testing.FakeBackend(
        testing.sequence(testing.unavailable(), testing.unavailable(), testing.reply("third"))
    )
    async with kit.running(kit.worker_for(store, {MODEL: backend}, max_attempts=5)):
        await kit.eventually(kit.ended(store, batch))
    assert kit.state_of(store, batch, "x") is RequestState.SUCCEEDED
    assert len(backend.requests) == 3


async def test_a_request_that_keeps_failing_errors_after_its_last_attempt() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["x"])
    backend = testing.FakeBackend(testing.sequence(testing.unavailable()))
    async with kit.running(kit.worker_for(store, {MODEL: backend}, max_attempts=3)):
        await kit.eventually(kit.ended(store, batch))
    row = kit.results(store, batch)["x"]
    assert row.state is RequestState.ERRORED and len(backend.requests) == 3
    assert row.error is not None and row.error.status_code == 503


async def test_a_final_failure_errors_at_once_with_the_upstream_reason() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["x"])
    backend = testing.FakeBackend(testing.sequence(testing.rejected("no such thing")))
    async with kit.running(kit.worker_for(store, {MODEL: backend}, max_attempts=5)):
        await kit.eventually(kit.ended(store, batch))
    row = kit.results(store, batch)["x"]
    assert len(backend.requests) == 1
    assert row.error is not None and row.error.type is ErrorType.INVALID_REQUEST
    assert "no such thing" in row.error.message


async def test_a_retry_waits_at_least_the_upstreams_retry_after() -> None:
    store = testing.MemoryJobStore()
    kit.submit(store, ["x"])
    backend = testing.FakeBackend(testing.sequence(testing.unavailable(retry_after=600.0)))
    async with kit.running(kit.worker_for(store, {MODEL: backend})):
        await kit.eventually(lambda: store.model_stats(time.time())[0].retry_waiting == 1)
        waiting = store.model_stats(time.time() + 590)[0].retry_waiting
    assert waiting == 1 and len(backend.requests) == 1


async def test_a_crashing_backend_errors_the_request_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["boom", "fine"])

    def handler(request: chat.ChatRequest) -> chat.ChatResponse:
        if request.messages[0].content == "boom":
            raise RuntimeError("a bug in the backend")
        return testing.reply()

    async with kit.running(kit.worker_for(store, {MODEL: testing.FakeBackend(handler)})):
        await kit.eventually(kit.ended(store, batch))
    rows = kit.results(store, batch)
    assert rows["fine"].state is RequestState.SUCCEEDED
    assert rows["boom"].error is not None and "internal error" in rows["boom"].error.message
    # The traceback's line is findable by the request's batch id and custom_id.
    (crash,) = [r for r in caplog.records if getattr(r, "event", None) == "backend_crashed"]
    assert (crash.batch_id, crash.custom_id) == (batch.id, "boom")  # type: ignore[attr-defined]


async def test_a_lost_lease_cancels_the_call_in_flight() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["x"])
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hang(_request: chat.ChatRequest) -> chat.ChatResponse:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    async with kit.running(kit.worker_for(store, {MODEL: testing.FakeBackend(hang)})):
        await asyncio.wait_for(started.wait(), 5)
        store.cancel_batch(batch.id, batch.owner, time.time())  # the lease goes with it
        await asyncio.wait_for(cancelled.wait(), 5)
        await kit.eventually(kit.ended(store, batch))
    assert kit.state_of(store, batch, "x") is RequestState.CANCELED


async def test_a_stale_write_after_a_lost_lease_is_dropped() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["x"])
    release = asyncio.Event()

    async def slow(_request: chat.ChatRequest) -> chat.ChatResponse:
        await release.wait()
        return testing.reply("late")

    # No heartbeat in the test's lifetime: the task is not cancelled, its
    # write arrives after the lease moved on, and must change nothing.
    worker = kit.worker_for(store, {MODEL: testing.FakeBackend(slow)}, heartbeat_seconds=60.0)
    async with kit.running(worker):
        await kit.eventually(lambda: bool(store.held_request_ids(worker.worker_id)))
        store.cancel_batch(batch.id, batch.owner, time.time())
        release.set()
        await kit.eventually(kit.ended(store, batch))
    row = kit.results(store, batch)["x"]
    assert row.state is RequestState.CANCELED and row.result is None


async def test_draining_finishes_the_call_in_flight_and_hands_back_the_rest() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["first", "second"])
    started, release = asyncio.Event(), asyncio.Event()

    async def gated(request: chat.ChatRequest) -> chat.ChatResponse:
        started.set()
        await release.wait()
        return testing.reply()

    worker = kit.worker_for(
        store, {MODEL: testing.FakeBackend(gated)}, models={MODEL: {"max_concurrency": 1}}
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    await kit.eventually(lambda: len(store.held_request_ids(worker.worker_id)) == 2)
    worker.drain()
    release.set()
    await asyncio.wait_for(task, 5)
    assert kit.state_of(store, batch, "first") is RequestState.SUCCEEDED
    assert kit.state_of(store, batch, "second") is RequestState.QUEUED
    (again,) = store.claim(MODEL, 5, "next-worker", time.time(), 30.0)
    assert again.attempt == 1  # handed back untouched: the attempt was refunded


async def test_a_small_batch_is_served_beside_a_big_one() -> None:
    store = testing.MemoryJobStore()
    # The big batch is older and sorts first on every tie: served alone, it
    # would take every one of the first claims.
    big = [f"big{i}" for i in range(20)]
    kit.submit(store, big, owner="key_a", created_at=time.time() - 60, batch_id="batch_a")
    kit.submit(store, ["small0", "small1"], owner="key_b", batch_id="batch_z")
    backend = testing.FakeBackend()
    worker = kit.worker_for(store, {MODEL: backend}, models={MODEL: {"max_concurrency": 1}})
    async with kit.running(worker):
        await kit.eventually(lambda: len(backend.requests) >= 4)
    first_four = [request.messages[0].content for request in backend.requests[:4]]
    assert {"small0", "small1"} <= set(first_four)


async def test_calls_in_flight_never_exceed_the_models_concurrency() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, [f"r{i}" for i in range(12)])

    async def slow(_request: chat.ChatRequest) -> chat.ChatResponse:
        await asyncio.sleep(0.01)
        return testing.reply()

    backend = testing.FakeBackend(slow)
    worker = kit.worker_for(store, {MODEL: backend}, models={MODEL: {"max_concurrency": 3}})
    async with kit.running(worker):
        await kit.eventually(kit.ended(store, batch))
    assert backend.max_in_flight == 3


async def test_a_request_the_model_cannot_honour_errors_without_a_call() -> None:
    store = testing.MemoryJobStore()
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    batch = kit.submit(store, ["x"], tools=[tool])
    no_tools = dataclasses.replace(testing.ALL_CAPABILITIES, tools=False)
    backend = testing.FakeBackend(capabilities=no_tools)
    async with kit.running(kit.worker_for(store, {MODEL: backend})):
        await kit.eventually(kit.ended(store, batch))
    row = kit.results(store, batch)["x"]
    assert backend.requests == []
    assert row.error is not None and "does not support tool use" in row.error.message
    assert row.error.type is ErrorType.INVALID_REQUEST


async def test_a_request_of_a_kind_the_model_does_not_serve_errors_at_once_naming_it() -> None:
    store = testing.MemoryJobStore()
    chat_batch = kit.submit(store, ["chat"])
    vectors = dataclasses.replace(chat_batch, id=chat_batch.id + "e", total=1)
    embedding = embeddings.EmbeddingRequest(model=MODEL, input=["text"])
    store.create_batch(vectors, [bm.NewRequest("vectors", MODEL, canonical.dump(embedding))])
    backend = testing.FakeBackend()  # serves chat only
    async with kit.running(kit.worker_for(store, {MODEL: backend})):
        await kit.eventually(kit.ended(store, chat_batch))
        await kit.eventually(kit.ended(store, vectors))
    row = kit.results(store, vectors)["vectors"]
    assert row.state is RequestState.ERRORED and row.error is not None
    assert row.error.type is ErrorType.INVALID_REQUEST
    assert f"model {MODEL!r} does not serve embeddings" in row.error.message
    assert "it serves: chat" in row.error.message
    assert len(backend.requests) == 1  # only the chat request reached the backend


async def test_an_embeddings_request_is_retried_then_its_vectors_recorded() -> None:
    store = testing.MemoryJobStore()
    chat_batch = kit.submit(store, ["chat"])
    vectors = dataclasses.replace(chat_batch, id=chat_batch.id + "e", total=1)
    embedding = embeddings.EmbeddingRequest(model=MODEL, input=["a", "b"])
    store.create_batch(vectors, [bm.NewRequest("vectors", MODEL, canonical.dump(embedding))])
    script = testing.sequence(testing.unavailable(), testing.embedding([[1.0, 0.0], [0.0, 1.0]]))
    backend = testing.FakeBackend(embed=script)
    async with kit.running(kit.worker_for(store, {MODEL: backend})):
        await kit.eventually(kit.ended(store, vectors))
    row = kit.results(store, vectors)["vectors"]
    assert row.state is RequestState.SUCCEEDED
    recorded = embeddings.EmbeddingResponse.model_validate(row.result)
    assert recorded.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert backend.embedding_requests == [embedding, embedding]


async def test_a_request_is_marked_generating_when_its_call_starts_not_when_claimed() -> None:
    store = testing.MemoryJobStore()
    batch = kit.submit(store, ["first", "second", "third"])
    release = asyncio.Event()

    async def held(_request: chat.ChatRequest) -> chat.ChatResponse:
        await release.wait()
        return testing.reply()

    backend = testing.FakeBackend(held)
    worker = kit.worker_for(store, {MODEL: backend}, models={MODEL: {"max_concurrency": 1}})
    async with kit.running(worker):
        # One call slot: one request in its call, one more leased beside it.
        await kit.eventually(lambda: store.tally(batch.id).generating == 1)
        await kit.eventually(lambda: store.tally(batch.id).count(RequestState.RUNNING) == 2)
        tally = store.tally(batch.id)
        assert (tally.generating, tally.claimed, tally.count(RequestState.QUEUED)) == (1, 1, 1)
        release.set()
        await kit.eventually(kit.ended(store, batch))
