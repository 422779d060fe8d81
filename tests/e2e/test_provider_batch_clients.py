"""The provider-batch clients against a real upstream that speaks the APIs:
a second ``batchgate serve`` (OpenAI Files + Batches, Anthropic Message
Batches) whose models run on the fake upstream. Each step the upstream-job
driver takes is shown here on its own: upload and find the file again,
create and find the batch again, poll it to its end, stream its results
back to request ids, cancel, and the "too large" refusals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from batchgate import config
from batchgate.backends import registry
from batchgate.backends.provider_batch import (
    JobTooLarge,
    LineResult,
    ProviderBatchBackend,
    UpstreamBatch,
    client_anthropic,
    client_openai,
)
from batchgate.canonical import chat
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj
from tests.e2e import processes
from tests.fakes.upstream import FakeUpstream

CHAT = "gpt-4o-mini"  # the upstream's model names, as the routing entries call them
CLAUDE = "claude-haiku"
QUOTA = "quota-chat"  # an upstream model with an enqueued-token quota
QUOTA_TOKENS = 200
MAX_BODY_BYTES = 64 * 1024  # the upstream's cap on a JSON create body


@dataclasses.dataclass(frozen=True)
class Upstream:
    port: int
    fake: FakeUpstream

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    data_dir = tmp_path_factory.mktemp("upstream")
    with FakeUpstream() as fake:
        chat_entry = {"backend": "openai_compatible", "base_url": fake.openai_base_url}
        models = {
            CHAT: chat_entry,
            QUOTA: chat_entry,
            CLAUDE: {"backend": "anthropic", "base_url": fake.base_url, "api_key": "unused"},
        }
        path = processes.write_config(
            data_dir / "upstream.toml",
            models,
            # One attempt: an upstream 5xx ends its row errored at once, so
            # its error line is what a provider's would be.
            worker={"poll_seconds": 0.05, "sweep_seconds": 0.1, "max_attempts": 1},
            tables={
                "limits": {"max_body_bytes": MAX_BODY_BYTES},
                "quotas": {"max_enqueued_tokens": {QUOTA: QUOTA_TOKENS}},
            },
        )
        port = processes.free_port()
        with processes.serve(path, data_dir, port):
            yield Upstream(port, fake)


@contextlib.asynccontextmanager
async def routing_backend(
    upstream: Upstream, kind: str, name: str, **options: Any
) -> AsyncIterator[Any]:
    """The routing side's backend for ``name`` on the upstream, closed after."""
    base_url = upstream.url + ("/v1" if kind == "openai_batch" else "")
    entry = config.ModelConfig(
        name=name, backend=kind, base_url=base_url, api_key=processes.API_KEY, **options
    )
    backend = registry.create(entry)
    assert isinstance(backend, ProviderBatchBackend)
    try:
        yield backend
    finally:
        await backend.aclose()


def new_job(backend: ProviderBatchBackend, count: int, **fields: Any) -> uj.UpstreamJob:
    return uj.UpstreamJob(
        id=f"job_{time.time_ns()}",
        model=backend.model,
        kind=backend.kind,
        endpoint=backend.endpoint,
        state=uj.JobState.ASSEMBLING,
        created_at=time.time(),
        request_count=count,
        **fields,
    )


def requests_for(texts: dict[int, str], max_tokens: int = 16) -> dict[int, chat.ChatRequest]:
    """Request id -> a one-message chat request (the model is the tenant's
    name for it; the line carries the upstream's)."""
    return {
        request_id: chat.ChatRequest.model_validate(
            {
                "model": "tenant-name",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": text}],
            }
        )
        for request_id, text in texts.items()
    }


def encoded(backend: ProviderBatchBackend, requests: dict[int, chat.ChatRequest]) -> list[bytes]:
    """The requests as the job's upstream lines, in request-id order given."""
    return [backend.codec.encode(rid, request) for rid, request in requests.items()]


async def running_upstream(upstream: Upstream, text: str) -> None:
    """Until the upstream has started the call for the request asking ``text``."""
    deadline = time.monotonic() + 30
    while not upstream.fake.calls(text):
        assert time.monotonic() < deadline, f"no call for {text!r}"
        await asyncio.sleep(0.05)


async def ended(backend: ProviderBatchBackend, batch_id: str, timeout: float = 60) -> UpstreamBatch:
    deadline = time.monotonic() + timeout
    while True:
        batch = await backend.client.get(batch_id)
        if batch.end_status is not None:
            return batch
        assert time.monotonic() < deadline, f"upstream batch still {batch.status}"
        await asyncio.sleep(0.05)


async def read_results(
    backend: ProviderBatchBackend, batch: UpstreamBatch, requests: dict[int, chat.ChatRequest]
) -> dict[int, LineResult]:
    out: dict[int, LineResult] = {}
    async for line in backend.client.results(batch):
        assert line.request_id not in out, f"line {line.request_id} came twice"
        out[line.request_id] = backend.codec.decode(line, requests[line.request_id])
    return out


async def completed_echoing(
    backend: ProviderBatchBackend, batch_id: str, texts: dict[int, str]
) -> UpstreamBatch:
    """The upstream batch once ended, having completed with every request
    (of ``requests_for(texts)``) echoed back under its own id."""
    batch = await ended(backend, batch_id)
    assert batch.end_status is uj.EndStatus.COMPLETED
    results = await read_results(backend, batch, requests_for(texts))
    assert sorted(results) == sorted(texts)
    for request_id, text in texts.items():
        assert_echoed(results[request_id], text)
    return batch


def assert_echoed(result: LineResult, text: str) -> None:
    assert result.error is None, result.error
    assert isinstance(result.response, chat.ChatResponse)
    assert result.response.text() == f"echo: {text}"
    assert result.response.stop_reason == "end_turn"
    # The fake counts words: the prompt's, and the reply's ("echo:" + text).
    assert result.response.usage.input_tokens == len(text.split())
    assert result.response.usage.output_tokens == 1 + len(text.split())


# -- OpenAI Files + Batches --------------------------------------------------------


async def test_openai_job_upload_create_poll_and_results(upstream: Upstream) -> None:
    async with routing_backend(upstream, "openai_batch", CHAT) as backend:
        # Request ids far apart: the custom_id upstream is the id itself.
        texts = {101: "alpha one", 7_000_002: "beta two words", 3: "x" * 400_000}
        requests = requests_for(texts)
        job = new_job(backend, len(texts))
        lines = encoded(backend, requests)

        assert await backend.client.find_file(job) is None
        file_id = await backend.client.upload(job, lines)
        assert await backend.client.find_file(job) == file_id
        assert await backend.client.find_file(new_job(backend, 3)) is None

        job = dataclasses.replace(job, state=uj.JobState.UPLOADED, upstream_file_id=file_id)
        assert await backend.client.find_batch(job, set()) is None
        created = await backend.client.create(job, [])
        assert created.job_id == job.id and created.end_status is None
        found = await backend.client.find_batch(job, set())
        assert found is not None and found.id == created.id

        batch = await completed_echoing(backend, created.id, texts)
        assert batch.request_total == 3


async def test_openai_finds_files_and_batches_past_the_first_page(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One item a page: of two jobs' files (and batches), one is on page two.
    monkeypatch.setattr(client_openai, "_FILES_PAGE", 1)
    monkeypatch.setattr(client_openai, "_BATCHES_PAGE", 1)
    async with routing_backend(upstream, "openai_batch", CHAT) as backend:
        jobs = []
        for text in ("paged one", "paged two"):
            job = new_job(backend, 1)
            lines = encoded(backend, requests_for({1: text}))
            file_id = await backend.client.upload(job, lines)
            jobs.append(dataclasses.replace(job, upstream_file_id=file_id))
        batches = [await backend.client.create(job, []) for job in jobs]
        for job, batch in zip(jobs, batches, strict=True):
            assert await backend.client.find_file(job) == job.upstream_file_id
            found = await backend.client.find_batch(job, set())
            assert found is not None and found.id == batch.id


async def test_openai_error_lines_map_to_error_types_and_retryability(upstream: Upstream) -> None:
    upstream.fake.script_for("please fail 503", "503")
    upstream.fake.script_for("please fail 400", "400")
    async with routing_backend(upstream, "openai_batch", CHAT) as backend:
        texts = {1: "please fail 503", 2: "please fail 400", 3: "fine"}
        requests = requests_for(texts)
        job = new_job(backend, len(texts))
        lines = encoded(backend, requests)
        job = dataclasses.replace(job, upstream_file_id=await backend.client.upload(job, lines))
        batch = await ended(backend, (await backend.client.create(job, [])).id)
        assert batch.output_file_id and batch.error_file_id
        results = await read_results(backend, batch, requests)

        assert_echoed(results[3], "fine")
        server = results[1]
        assert server.error is not None and server.retryable
        assert server.error.status_code == 503
        refused = results[2]
        assert refused.error is not None and not refused.retryable
        assert (refused.error.status_code, refused.error.type) == (
            400,
            failures.ErrorType.INVALID_REQUEST,
        )


async def test_openai_done_jobs_files_are_deleted(upstream: Upstream) -> None:
    upstream.fake.script_for("please fail 400", "400")
    async with routing_backend(upstream, "openai_batch", CHAT) as backend:
        requests = requests_for({1: "please fail 400", 2: "fine"})
        job = new_job(backend, len(requests))
        lines = encoded(backend, requests)
        job = dataclasses.replace(job, upstream_file_id=await backend.client.upload(job, lines))
        batch = await ended(backend, (await backend.client.create(job, [])).id)
        done = dataclasses.replace(
            job, output_file_id=batch.output_file_id, error_file_id=batch.error_file_id
        )
        made = [done.upstream_file_id, done.output_file_id, done.error_file_id]
        assert all(made)
        headers = {"authorization": f"Bearer {processes.API_KEY}"}
        async with httpx.AsyncClient(base_url=upstream.url, headers=headers) as http:
            for file_id in made:
                assert (await http.get(f"/v1/files/{file_id}")).status_code == 200
            await backend.client.delete_upstream(done)
            for file_id in made:
                assert (await http.get(f"/v1/files/{file_id}")).status_code == 404
        await backend.client.delete_upstream(done)  # gone already: nothing to do
        async with routing_backend(upstream, "openai_batch", CHAT, delete_files=False) as kept:
            job = new_job(kept, 1)
            job = dataclasses.replace(job, upstream_file_id=await kept.client.upload(job, lines))
            await kept.client.delete_upstream(job)
            assert await kept.client.find_file(job) == job.upstream_file_id


async def test_openai_cancel_leaves_unrun_rows_unfinished(upstream: Upstream) -> None:
    upstream.fake.script_for("hang here", {"kind": "hang", "hang_seconds": 30})
    async with routing_backend(upstream, "openai_batch", CHAT) as backend:
        texts = {11: "quick", 12: "hang here"}
        requests = requests_for(texts)
        job = new_job(backend, len(texts))
        lines = encoded(backend, requests)
        job = dataclasses.replace(job, upstream_file_id=await backend.client.upload(job, lines))
        created = await backend.client.create(job, [])
        await running_upstream(upstream, "hang here")  # the hanging row is running

        cancelling = await backend.client.cancel(created.id)
        assert cancelling.id == created.id
        batch = await ended(backend, created.id)
        assert batch.end_status is uj.EndStatus.CANCELLED
        results = await read_results(backend, batch, requests)
        assert results[12] == LineResult(12)  # never finished upstream: still ours to run
        # The other row either ran before the cancel landed or never did.
        if results[11] != LineResult(11):
            assert_echoed(results[11], "quick")


async def test_openai_token_limit_on_create_is_job_too_large(upstream: Upstream) -> None:
    async with routing_backend(upstream, "openai_batch", QUOTA) as backend:
        words = " ".join(["word"] * 100)
        texts = {i: f"{i} {words}" for i in range(1, 6)}  # ~500 tokens > the quota
        requests = requests_for(texts)
        job = new_job(backend, len(texts))
        lines = encoded(backend, requests)
        job = dataclasses.replace(job, upstream_file_id=await backend.client.upload(job, lines))
        with pytest.raises(JobTooLarge, match="token limit") as refused:
            await backend.client.create(job, [])
        assert refused.value.reason == "token_limit_exceeded"
        assert await backend.client.find_batch(job, set()) is None


async def test_openai_batch_that_fails_upstream_says_why(upstream: Upstream) -> None:
    async with routing_backend(upstream, "openai_batch", CHAT) as backend:
        job = new_job(backend, 1)
        bad = b'{"custom_id": "1", "method": "POST", "url": "/v1/embeddings", "body": {}}'
        job = dataclasses.replace(job, upstream_file_id=await backend.client.upload(job, [bad]))
        batch = await ended(backend, (await backend.client.create(job, [])).id)
        assert batch.end_status is uj.EndStatus.FAILED
        assert batch.error is not None and "url" in batch.error
        assert batch.refusal is None


# -- Anthropic Message Batches ----------------------------------------------------


async def test_anthropic_job_create_find_poll_and_results(upstream: Upstream) -> None:
    async with routing_backend(upstream, "anthropic_batch", CLAUDE) as backend:
        texts = {21: "gamma", 22: "delta epsilon", 23: "zeta eta theta"}
        requests = requests_for(texts)
        job = new_job(backend, len(texts), create_started_at=time.time())
        lines = encoded(backend, requests)
        assert await backend.client.find_batch(job, set()) is None

        created = await backend.client.create(job, lines)
        assert created.request_total == 3 and created.end_status is None
        found = await backend.client.find_batch(job, set())
        assert found is not None and found.id == created.id
        # Not one already recorded on another job, nor one of another size.
        assert await backend.client.find_batch(job, {created.id}) is None
        other_size = dataclasses.replace(job, request_count=4)
        assert await backend.client.find_batch(other_size, set()) is None
        # Created before this job's create started (less the skew allowance).
        later = dataclasses.replace(job, create_started_at=time.time() + 120)
        assert await backend.client.find_batch(later, set()) is None

        await completed_echoing(backend, created.id, texts)


async def test_anthropic_finds_batches_past_the_first_page(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One batch a page: of two jobs' batches (sizes no other test makes),
    # one is on page two.
    monkeypatch.setattr(client_anthropic, "_PAGE", 1)
    async with routing_backend(upstream, "anthropic_batch", CLAUDE) as backend:
        created = {}
        for count in (5, 6):
            job = new_job(backend, count, create_started_at=time.time())
            lines = encoded(backend, requests_for({i: "paged" for i in range(1, count + 1)}))
            created[count] = (job, await backend.client.create(job, lines))
        for job, batch in created.values():
            found = await backend.client.find_batch(job, set())
            assert found is not None and found.id == batch.id


async def test_anthropic_cancel_leaves_unrun_rows_unfinished(upstream: Upstream) -> None:
    upstream.fake.script_for("claude hangs", {"kind": "hang", "hang_seconds": 30})
    async with routing_backend(upstream, "anthropic_batch", CLAUDE) as backend:
        requests = requests_for({31: "claude hangs"})
        job = new_job(backend, 1, create_started_at=time.time())
        lines = encoded(backend, requests)
        created = await backend.client.create(job, lines)
        await running_upstream(upstream, "claude hangs")
        await backend.client.cancel(created.id)
        batch = await ended(backend, created.id)
        assert batch.end_status is uj.EndStatus.CANCELLED
        assert await read_results(backend, batch, requests) == {31: LineResult(31)}


async def test_anthropic_request_too_large_is_job_too_large(upstream: Upstream) -> None:
    async with routing_backend(upstream, "anthropic_batch", CLAUDE) as backend:
        requests = requests_for({i: "y" * 20_000 for i in range(1, 5)})  # > MAX_BODY_BYTES
        job = new_job(backend, 4, create_started_at=time.time())
        lines = encoded(backend, requests)
        with pytest.raises(JobTooLarge) as refused:
            await backend.client.create(job, lines)
        assert refused.value.reason == "request_too_large"
