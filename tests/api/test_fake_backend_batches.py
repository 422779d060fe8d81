"""Batches on a model whose backend is the shipped ``testing.FakeBackend``:
the API, store and worker in process, and no upstream at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types import CreateEmbeddingResponse

from batchgate import testing
from batchgate.canonical import embeddings
from tests import harness, openai_batches

MODEL = "fake-vectors"
EMBEDDINGS = "/v1/embeddings"


def first_call_unavailable() -> testing.EmbedHandler:
    """Embeds as ``testing.embed_echo`` does, after one 503."""
    calls: list[embeddings.EmbeddingRequest] = []

    def embed(request: embeddings.EmbeddingRequest) -> embeddings.EmbeddingResponse:
        calls.append(request)
        if len(calls) == 1:
            raise testing.unavailable()
        return testing.embed_echo(request)

    return embed


@pytest.fixture
def backend() -> testing.FakeBackend:
    return testing.FakeBackend(embed=first_call_unavailable())


@pytest.fixture
def server(tmp_path: Path, backend: testing.FakeBackend) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.fake_model(MODEL, native_endpoints=["embeddings"])}
    settings = harness.make_settings(tmp_path, models)
    with harness.serve(settings, backends={MODEL: backend}) as running:
        yield running


def test_an_embeddings_batch_is_retried_and_its_vectors_reach_the_output_file(
    server: harness.RunningServer, backend: testing.FakeBackend
) -> None:
    with server.openai(max_retries=0) as client:
        batch = openai_batches.run(
            client,
            EMBEDDINGS,
            [openai_batches.line("v", EMBEDDINGS, model=MODEL, input=["a cat", "sat"])],
        )
        out = openai_batches.result_lines(client, batch.output_file_id)
    assert batch.status == "completed" and batch.request_counts.completed == 1
    body = CreateEmbeddingResponse.model_validate(out["v"]["response"]["body"])
    assert [item.embedding for item in body.data] == [
        pytest.approx(testing.vector_for("a cat")),
        pytest.approx(testing.vector_for("sat")),
    ]
    assert body.usage.prompt_tokens == 3  # embed_echo counts words
    assert [request.input for request in backend.embedding_requests] == [["a cat", "sat"]] * 2


def test_a_native_chat_batch_reaches_the_fake_backend_as_a_canonical_request(
    server: harness.RunningServer, backend: testing.FakeBackend
) -> None:
    batch = server.wait_ended(server.submit(MODEL, ["hello", "world"]))
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 2
    assert sorted(request.messages[-1].content for request in backend.requests) == [
        "hello",
        "world",
    ]
    assert backend.embedding_requests == []


def test_the_sdk_sees_a_bad_key_as_a_401_in_process(server: harness.RunningServer) -> None:
    with (
        server.openai("bg-not-a-key", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.batches.list()
