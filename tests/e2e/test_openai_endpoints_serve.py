"""``batchgate serve`` as a real process, with the embedded SmolLM2 model and a
fake upstream side by side, driven by the official ``openai`` SDK: a
responses, a completions and an embeddings batch each run end to end, and
their output files are read with the SDK's own types."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator

import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.responses import Response

from batchgate import config
from tests import openai_batches
from tests.e2e import processes
from tests.fakes.upstream import FakeUpstream

EMBEDDED = config.DEFAULT_MODEL_NAME
FAKE = "fake-upstream"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[openai.OpenAI]:
    data_dir = tmp_path_factory.mktemp("serve")
    config_file = processes.write_config(
        data_dir / "batchgate.toml",
        {
            EMBEDDED: {"backend": "llama_cpp", "n_ctx": 512},
            FAKE: {
                "backend": "openai_compatible",
                "base_url": upstream.openai_base_url,
                "native_endpoints": ["embeddings"],
            },
        },
        worker={"poll_seconds": 0.05, "sweep_seconds": 0.2},
    )
    port = processes.free_port()
    with (
        processes.serve(config_file, data_dir, port),
        openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=processes.API_KEY, max_retries=0
        ) as sdk,
    ):
        yield sdk


def test_a_responses_batch_on_the_embedded_model_and_an_upstream(client: openai.OpenAI) -> None:
    body = {"input": "What is the capital of France?", "max_output_tokens": 8, "temperature": 0}
    out = openai_batches.completed_bodies(
        client,
        "/v1/responses",
        {
            "embedded": {"model": EMBEDDED, "instructions": "Answer briefly.", **body},
            "upstream": {"model": FAKE, **body},
        },
    )
    embedded = Response.model_validate(out["embedded"])
    assert embedded.model == EMBEDDED and embedded.output_text.strip()
    assert embedded.instructions == "Answer briefly."
    assert embedded.usage is not None and 0 < embedded.usage.output_tokens <= 8
    upstream = Response.model_validate(out["upstream"])
    assert upstream.output_text == "echo: What is the capital of France?"


def test_a_completions_batch_on_the_embedded_model_and_an_upstream(client: openai.OpenAI) -> None:
    body = {"prompt": "The sky is", "max_tokens": 4, "temperature": 0}
    out = openai_batches.completed_bodies(
        client,
        "/v1/completions",
        {"embedded": {"model": EMBEDDED, **body}, "upstream": {"model": FAKE, **body}},
    )
    embedded = Completion.model_validate(out["embedded"])
    assert embedded.object == "text_completion" and embedded.choices[0].text.strip()
    assert embedded.usage is not None and 0 < embedded.usage.completion_tokens <= 4
    assert Completion.model_validate(out["upstream"]).choices[0].text == "echo: The sky is"


def test_an_embeddings_batch_on_the_embedded_model_and_an_upstream(client: openai.OpenAI) -> None:
    texts = ["first text", "second text"]
    out = openai_batches.completed_bodies(
        client,
        "/v1/embeddings",
        {
            "embedded": {"model": EMBEDDED, "input": texts},
            "embedded-b64": {"model": EMBEDDED, "input": texts, "encoding_format": "base64"},
            "upstream": {"model": FAKE, "input": texts},
        },
    )
    embedded = CreateEmbeddingResponse.model_validate(out["embedded"])
    assert [item.index for item in embedded.data] == [0, 1]
    first, second = (item.embedding for item in embedded.data)
    assert len(first) == len(second) > 0 and first != second
    assert math.isclose(math.sqrt(sum(x * x for x in first)), 1.0, rel_tol=1e-3)
    assert embedded.usage.prompt_tokens > 0
    raw = base64.b64decode(out["embedded-b64"]["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(first, abs=1e-6)
    upstream = CreateEmbeddingResponse.model_validate(out["upstream"])
    assert [item.index for item in upstream.data] == [0, 1]
    assert upstream.usage.prompt_tokens == 4
