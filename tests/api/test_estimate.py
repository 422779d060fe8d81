"""Dry runs (``?dry_run=true``) over real HTTP: validated like a create,
answered with an estimate, and nothing stored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from batchgate import config
from batchgate.backends import tokens as token_count
from batchgate.canonical import chat
from batchgate.domain import batch as batch_model
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from tests import harness
from tests.contract import builders
from tests.fakes.upstream import FakeUpstream

FAKE = harness.FAKE_MODEL
EMBEDDED = config.DEFAULT_MODEL_NAME


def inline(custom_id: str, text: str, model: str = FAKE, max_tokens: int = 100) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        },
    }


def stored_nothing(server: harness.RunningServer, client: httpx.Client) -> bool:
    return (
        client.get("/v1/batches").json()["data"] == []
        and client.get("/v1/files").json()["data"] == []
        and client.get("/v1/messages/batches").json()["data"] == []
    )


def test_native_dry_run_counts_prices_and_stores_nothing(server: harness.RunningServer) -> None:
    body = {"requests": [inline("a", "a" * 400), inline("b", "b" * 400, max_tokens=300)]}
    with server.client() as client:
        response = client.post("/v1/batches", params={"dry_run": "true"}, json=body)
        assert response.status_code == 200, response.text
        assert stored_nothing(server, client)
    estimate = response.json()
    assert estimate["object"] == "batch.estimate" and estimate["request_count"] == 2
    # The fake model is an upstream: its tokens are estimated (~4 characters each).
    assert estimate["input_tokens_exact"] is False
    assert 200 <= estimate["input_tokens"] <= 230
    assert estimate["max_output_tokens"] == 400
    tokens = estimate["input_tokens"]
    # $2 / $6 per million at the 50 % batch price.
    assert estimate["cost"]["min"] == pytest.approx(tokens * 1e-6)
    assert estimate["cost"]["max"] == pytest.approx(tokens * 1e-6 + 400 * 3e-6)
    (model,) = estimate["models"]
    assert model["model"] == FAKE and model["eta"] is None  # no ETA for an upstream
    assert estimate["admission"] == {"admitted": True, "error": None}


def test_a_bad_dry_run_is_the_same_400_as_a_create(server: harness.RunningServer) -> None:
    body = {"requests": [inline("a", "x"), {"custom_id": "b", "params": {"model": FAKE}}]}
    with server.client() as client:
        response = client.post("/v1/batches", params={"dry_run": "true"}, json=body)
        assert stored_nothing(server, client)
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("requests[1].params")


def test_a_dry_run_for_an_unknown_model_is_not_admitted(server: harness.RunningServer) -> None:
    """Create takes such a batch, but its requests end errored at once: the
    estimate must not say it was admitted."""
    body = {"requests": [inline("a", "x"), inline("b", "x", model="no-such-model")]}
    with server.client() as client:
        native_answer = client.post("/v1/batches", params={"dry_run": "true"}, json=body)
        anthropic_answer = client.post(
            "/v1/messages/batches", params={"dry_run": "true"}, json=body
        )
        assert stored_nothing(server, client)
    assert native_answer.status_code == 200, native_answer.text
    admission = native_answer.json()["admission"]
    assert admission["admitted"] is False
    assert admission["error"]["code"] == "model_not_found"
    assert "unknown model 'no-such-model'" in admission["error"]["message"]
    assert "1 request would end errored" in admission["error"]["message"]
    assert anthropic_answer.json()["admission"] == admission
    unknown = [m for m in native_answer.json()["models"] if m["model"] == "no-such-model"]
    assert unknown[0]["configured"] is False


def test_anthropic_dry_run_validates_anthropic_custom_ids(server: harness.RunningServer) -> None:
    with server.client() as client:
        good = client.post(
            "/v1/messages/batches",
            params={"dry_run": "true"},
            json={"requests": [inline("a", "x")]},
        )
        bad = client.post(
            "/v1/messages/batches",
            params={"dry_run": "true"},
            json={"requests": [inline("not ok!", "x")]},
        )
        assert stored_nothing(server, client)
    assert good.status_code == 200 and good.json()["request_count"] == 1
    assert bad.status_code == 400 and bad.json()["type"] == "error"


def file_line(custom_id: str, **body: Any) -> str:
    return json.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": FAKE, "messages": [{"role": "user", "content": "hi"}], **body},
        }
    )


def dry_run_file(sdk: openai.OpenAI, content: bytes) -> dict[str, Any]:
    """Upload ``content`` and dry-run a chat-completions batch of it."""
    file_id = sdk.files.create(file=("in.jsonl", content), purpose="batch").id
    response = sdk.post(
        "/batches",
        cast_to=httpx.Response,
        body={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        options={"params": {"dry_run": "true"}},
    )
    estimate: dict[str, Any] = response.json()
    return estimate


def test_openai_file_dry_run_estimates_every_line_and_creates_no_batch(
    server: harness.RunningServer,
) -> None:
    content = "\n".join(file_line(f"r{i}", max_tokens=50) for i in range(3)).encode()
    with server.openai(server.api_key) as sdk:
        estimate = dry_run_file(sdk, content)
        assert list(sdk.batches.list()) == []
    assert estimate["request_count"] == 3 and estimate["max_output_tokens"] == 150


def test_openai_file_dry_run_names_the_bad_lines(server: harness.RunningServer) -> None:
    content = "\n".join([file_line("r0"), "{not json", file_line("r0")]).encode()
    with server.openai(server.api_key) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            dry_run_file(sdk, content)
        assert list(sdk.batches.list()) == []
    assert "2 bad lines" in caught.value.message
    assert "line 2" in caught.value.message and "line 3" in caught.value.message


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[harness.RunningServer]:
    """The embedded model configured, no worker (the dry run needs only its tokenizer)."""
    settings = harness.make_settings(tmp_path, config.default_models())
    with harness.serve(settings, with_worker=False) as running:
        yield running


def test_embedded_model_tokens_are_exact_and_eta_uses_the_configured_rate(
    embedded: harness.RunningServer,
) -> None:
    body = {"requests": [inline("a", "Name three colours.", model=EMBEDDED, max_tokens=64)]}
    with embedded.client() as client:
        estimate = client.post("/v1/batches", params={"dry_run": "true"}, json=body).json()
    request = chat.ChatRequest.model_validate(body["requests"][0]["params"])
    expected = token_count.TokenCounter(embedded.settings.models).count(request)
    assert estimate["input_tokens_exact"] is True and estimate["input_tokens"] == expected
    eta = estimate["models"][0]["eta"]
    rate = embedded.settings.estimate.default_tokens_per_second
    assert eta["throughput_source"] == "configured"
    assert eta["min_seconds"] == pytest.approx(expected / rate, abs=0.1)
    assert eta["max_seconds"] == pytest.approx((expected + 64) / rate, abs=0.1)


def test_embedded_model_eta_uses_its_measured_throughput(
    embedded: harness.RunningServer,
) -> None:
    # 30 requests of 100 tokens each that ran over the last 10 seconds: 300 tokens/s.
    store, now = embedded.store, time.time()
    builders.make_batch(store, 30, owner="someone", model=EMBEDDED, created_at=now - 20)
    claimed = store.claim(EMBEDDED, 30, "w", now - 10, 60)
    store.record_outcomes(
        [
            batch_model.Outcome(
                c.id, c.attempt, "w", RequestState.SUCCEEDED, input_tokens=40, output_tokens=60
            )
            for c in claimed
        ],
        now,
    )
    body = {"requests": [inline("a", "Name three colours.", model=EMBEDDED, max_tokens=64)]}
    with embedded.client() as client:
        estimate = client.post("/v1/batches", params={"dry_run": "true"}, json=body).json()
    eta = estimate["models"][0]["eta"]
    assert eta["throughput_source"] == "measured" and eta["sample_requests"] == 30
    assert eta["tokens_per_second"] == pytest.approx(300, rel=0.05)
    # 30 at once in their calls, 3 finished a second: one request, 1 / 3 s.
    assert eta["measured_concurrency"] == pytest.approx(30, rel=0.05)
    assert eta["min_seconds"] == pytest.approx(1 / 3, abs=0.05)  # rounded to 0.1 s


@pytest.fixture
def no_worker(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """The fake model, no worker: what a key enqueues stays enqueued."""
    models = {FAKE: harness.openai_model(FAKE, upstream.openai_base_url)}
    with harness.serve(harness.make_settings(tmp_path, models), with_worker=False) as running:
        yield running


def limited_key(server: harness.RunningServer, max_tokens: int) -> str:
    with server.client() as admin:
        created = admin.post(
            "/v1/keys",
            json={"name": "limited", "quotas": {"max_enqueued_tokens": {FAKE: max_tokens}}},
        )
    assert created.status_code == 200, created.text
    secret: str = created.json()["value"]
    return secret


TEXT = "abcd" * 100  # ~106 estimated input tokens


def test_a_dry_run_over_the_token_quota_reports_the_429_create_answers(
    no_worker: harness.RunningServer,
) -> None:
    key = limited_key(no_worker, 150)
    one = {"requests": [inline("a", TEXT)]}
    two = {"requests": [inline("a", TEXT), inline("b", TEXT)]}
    with no_worker.client(key) as client:
        fits = client.post("/v1/batches", params={"dry_run": "true"}, json=one)
        over = client.post("/v1/batches", params={"dry_run": "true"}, json=two)
        anthropic_over = client.post("/v1/messages/batches", params={"dry_run": "true"}, json=two)
        assert stored_nothing(no_worker, client)
        created = client.post("/v1/batches", json=two)
    assert fits.status_code == 200 and fits.json()["admission"]["admitted"] is True
    # Still an estimate (the cost is worth knowing; the quota clears as work ends)...
    assert over.status_code == 200 and over.json()["request_count"] == 2
    # ...saying what create answers.
    assert created.status_code == 429
    refusal = over.json()["admission"]
    assert refusal["admitted"] is False
    assert refusal["error"] == {"status": 429, **created.json()["error"]}
    assert refusal["error"]["code"] == "token_limit_exceeded"
    assert anthropic_over.json()["admission"] == refusal


def test_a_dry_run_for_a_full_key_is_an_estimate_on_both_paths(
    no_worker: harness.RunningServer,
) -> None:
    key = limited_key(no_worker, 106)  # one request's worth
    body = {"requests": [inline("a", TEXT)]}
    with no_worker.client(key) as client:
        assert client.post("/v1/batches", json=body).status_code == 200
        native_dry = client.post("/v1/batches", params={"dry_run": "true"}, json=body)
        anthropic_dry = client.post("/v1/messages/batches", params={"dry_run": "true"}, json=body)
        native_create = client.post("/v1/batches", json=body)
        anthropic_create = client.post("/v1/messages/batches", json=body)
    for dry in (native_dry, anthropic_dry):
        assert dry.status_code == 200, dry.text
        assert dry.json()["admission"]["error"]["code"] == "token_limit_exceeded"
    assert native_create.status_code == anthropic_create.status_code == 429


def test_an_openai_file_dry_run_over_the_token_quota_reports_the_refusal(
    no_worker: harness.RunningServer,
) -> None:
    key = limited_key(no_worker, 10)
    content = "\n".join(file_line(f"r{i}", max_tokens=50) for i in range(3)).encode()
    with no_worker.openai(key, max_retries=0) as sdk:
        estimate = dry_run_file(sdk, content)
        assert list(sdk.batches.list()) == []
    assert estimate["request_count"] == 3
    assert estimate["admission"]["error"]["code"] == "token_limit_exceeded"


PROVIDER_BATCH = "pb-mini"


@pytest.fixture
def provider_batch(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """A model served through a provider's batch API (collecting for 45 s),
    no worker: the jobs a test seeds stay as it left them."""
    models = {
        PROVIDER_BATCH: harness.openai_batch_model(
            PROVIDER_BATCH,
            upstream.openai_base_url,
            flush_after_seconds=45,
            price={"input": 2.0, "output": 6.0},
        )
    }
    settings = harness.make_settings(tmp_path, models)
    with harness.serve(settings, with_worker=False) as running:
        yield running


def provider_batch_eta(server: harness.RunningServer) -> dict[str, Any]:
    with server.client() as client:
        return harness.dry_run_eta(client, inline("a", "hello", model=PROVIDER_BATCH))


def test_a_provider_batch_model_with_no_ended_job_says_its_eta_is_not_measured(
    provider_batch: harness.RunningServer,
) -> None:
    # A job still running upstream says nothing about how long one takes.
    builders.make_batch(provider_batch.store, 2, model=PROVIDER_BATCH)
    builders.seed_job(provider_batch.store, PROVIDER_BATCH, 2, submitted_at=time.time() - 60)
    eta = provider_batch_eta(provider_batch)
    assert eta == {
        "min_seconds": None,
        "max_seconds": None,
        "throughput_source": "job_turnaround",
        "turnaround_seconds": None,
        "sample_jobs": 0,
        "flush_after_seconds": 45.0,
    }


def test_a_provider_batch_models_eta_is_its_jobs_median_turnaround_plus_the_flush_wait(
    provider_batch: harness.RunningServer,
) -> None:
    store, now = provider_batch.store, time.time()
    ran = [
        (600.0, uj.EndStatus.COMPLETED),
        (1800.0, uj.EndStatus.COMPLETED),
        (900.0, uj.EndStatus.COMPLETED),
        (5.0, uj.EndStatus.CANCELLED),  # cancelled for the fallback: not the provider's time
    ]
    for seconds, status in ran:
        builders.make_batch(store, 1, model=PROVIDER_BATCH)
        start = now - 4000
        builders.seed_job(
            store,
            PROVIDER_BATCH,
            1,
            submitted_at=start,
            ended_at=start + seconds,
            end_status=status,
        )
    eta = provider_batch_eta(provider_batch)
    assert eta["throughput_source"] == "job_turnaround" and eta["sample_jobs"] == 3
    assert eta["turnaround_seconds"] == 900.0
    # Sent at once when its job fills up, at worst after the 45 s flush wait.
    assert (eta["min_seconds"], eta["max_seconds"]) == (900.0, 945.0)
