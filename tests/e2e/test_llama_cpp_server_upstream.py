"""A real OpenAI-compatible upstream somebody else wrote: llama-cpp-python's
own server (``python -m llama_cpp.server``, the ``llama-cpp-python[server]``
extra) on the same SmolLM2 GGUF the embedded engine runs. A chat, a
completions (``native_endpoints``) and an embeddings batch go through
``openai_compatible`` to it, and the same greedy requests through the
embedded engine; the answers must match (or the test says why they cannot)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from batchgate import config
from batchgate.backends.llama_cpp import options as llama_options
from tests import openai_batches
from tests.e2e import processes

pytestmark = pytest.mark.slow

EMBEDDED = config.DEFAULT_MODEL_NAME
CHAT = "llama-server-chat"  # the server's model_alias, and batchgate's name
EMBED = "llama-server-embed"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server on a free port with two aliases of the GGUF: llama-cpp-python
    loads a model either for generation or for embeddings."""
    workdir = tmp_path_factory.mktemp("llama-server")
    gguf = str(llama_options.EngineOptions().resolved_model_path())
    port = processes.free_port()
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {"model": gguf, "model_alias": CHAT, "n_ctx": 2048, "verbose": False},
            {"model": gguf, "model_alias": EMBED, "embedding": True, "verbose": False},
        ],
    }
    (workdir / "config.json").write_text(json.dumps(settings))
    log = (workdir / "server.log").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--config_file", str(workdir / "config.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(base_url, popen, workdir / "server.log")
        yield base_url
    finally:
        popen.terminate()
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
        log.close()


def _wait_ready(base_url: str, popen: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama_cpp.server did not answer in 120 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, llama_server: str) -> Iterator[openai.OpenAI]:
    data_dir = tmp_path_factory.mktemp("serve")
    upstream = {"backend": "openai_compatible", "base_url": llama_server, "max_concurrency": 1}
    config_file = processes.write_config(
        data_dir / "batchgate.toml",
        {
            EMBEDDED: {"backend": "llama_cpp", "n_ctx": 512},
            CHAT: {**upstream, "native_endpoints": ["completions"]},
            EMBED: {**upstream, "native_endpoints": ["embeddings"]},
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


# Why greedy answers may part: the model is Q4_1, and a near tie between two
# tokens is decided by the last bits of the logits, which depend on the order
# of floating-point sums: the server decodes one sequence with its own thread
# split, the embedded engine several sequences per llama_decode. Both read the
# same prompt (the GGUF's chat template: equal prompt token counts) and agree
# on the opening; after the first near tie they may continue differently.
AGREED_OPENING = 6  # characters both must share


def test_a_chat_batch_answers_as_the_embedded_engine(client: openai.OpenAI) -> None:
    body = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 12,
        "temperature": 0,
    }
    out = openai_batches.completed_bodies(
        client,
        "/v1/chat/completions",
        {"upstream": {"model": CHAT, **body}, "embedded": {"model": EMBEDDED, **body}},
    )
    upstream, embedded = out["upstream"], out["embedded"]
    assert upstream["model"] == CHAT and upstream["object"] == "chat.completion"
    theirs = upstream["choices"][0]["message"]["content"]
    ours = embedded["choices"][0]["message"]["content"]
    assert theirs[:AGREED_OPENING] == ours[:AGREED_OPENING], (theirs, ours)
    assert upstream["usage"]["prompt_tokens"] == embedded["usage"]["prompt_tokens"]
    assert 0 < upstream["usage"]["completion_tokens"] <= 12


def test_a_completions_batch_goes_to_the_upstreams_own_endpoint(client: openai.OpenAI) -> None:
    body = {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}
    out = openai_batches.completed_bodies(
        client,
        "/v1/completions",
        {"upstream": {"model": CHAT, **body}, "embedded": {"model": EMBEDDED, **body}},
    )
    upstream, embedded = out["upstream"], out["embedded"]
    # A text_completion with the raw prompt's own token count: the upstream's
    # /v1/completions answered (a chat fallback would count a chat template).
    assert upstream["object"] == "text_completion"
    theirs, ours = upstream["choices"][0]["text"], embedded["choices"][0]["text"]
    assert theirs.strip() and theirs[:AGREED_OPENING] == ours[:AGREED_OPENING], (theirs, ours)
    assert upstream["usage"]["prompt_tokens"] == embedded["usage"]["prompt_tokens"]


def test_an_embeddings_batch_says_why_this_server_cannot_serve_one(
    client: openai.OpenAI, llama_server: str
) -> None:
    """llama-cpp-python's server has no pooling setting and SmolLM2's GGUF
    declares none, so it answers one vector per token, not per input: not an
    OpenAI embeddings response. batchgate errors that request, naming the
    field; pooled by hand (mean), the server's vectors are the embedded
    engine's (which pools by mean when the GGUF declares nothing)."""
    texts = ["The cat sleeps on the mat.", "Bond yields rose sharply today."]
    lines = [
        openai_batches.line("upstream", "/v1/embeddings", model=EMBED, input=texts),
        openai_batches.line("embedded", "/v1/embeddings", model=EMBEDDED, input=texts),
    ]
    batch = openai_batches.run(client, "/v1/embeddings", lines, timeout=300)
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    (failed,) = openai_batches.result_lines(client, batch.error_file_id).values()
    message = failed["response"]["body"]["error"]["message"]
    assert "must be numbers (response.data[0].embedding[0])" in message, message
    (succeeded,) = openai_batches.result_lines(client, batch.output_file_id).values()
    ours = [item["embedding"] for item in succeeded["response"]["body"]["data"]]

    for text, vector in zip(texts, ours, strict=True):
        # One input a call: with no pooling, two inputs in one call came back
        # unlike either (cosine 0.06 to the pooled vector, llama-cpp-python 0.3.36).
        answer = httpx.post(
            f"{llama_server}/embeddings", json={"model": EMBED, "input": text}, timeout=120
        ).json()
        per_token = answer["data"][0]["embedding"]
        pooled = [sum(column) / len(per_token) for column in zip(*per_token, strict=True)]
        assert len(pooled) == len(vector) == 576
        assert cosine(pooled, vector) > 0.99


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.hypot(*a) * math.hypot(*b))
