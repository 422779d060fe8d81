"""Per-key quotas over real HTTP: each dialect refuses work past a quota with
a 429 in its own envelope, and stores nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from batchgate import config
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"
# Each request below is 400 characters: ~106 estimated input tokens.
TEXT = "abcd" * 100


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models)
    settings.quotas = config.QuotaSettings(max_file_bytes=10_000)
    with harness.serve(settings, with_worker=False) as running:
        yield running


def limited_key(server: harness.RunningServer, **quotas: object) -> str:
    with server.client() as admin:
        created = admin.post("/v1/keys", json={"name": "limited", "quotas": quotas})
    assert created.status_code == 200, created.text
    secret: str = created.json()["value"]
    return secret


def params(text: str = TEXT) -> dict[str, object]:
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


def test_openai_file_batch_over_the_token_quota_gets_token_limit_exceeded(
    server: harness.RunningServer,
) -> None:
    key = limited_key(server, max_enqueued_tokens={MODEL: 300})
    lines = "\n".join(
        json.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": params(),
            }
        )
        for i in range(3)
    )
    with server.openai(key, max_retries=0) as sdk:
        uploaded = sdk.files.create(file=("in.jsonl", io.BytesIO(lines.encode())), purpose="batch")
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert sdk.batches.list().data == []  # nothing stored
    error = raised.value.body
    assert isinstance(error, dict) and error["code"] == "token_limit_exceeded"
    assert error["message"].startswith(f"Enqueued token limit reached for {MODEL}")
    assert "Limit: 300 enqueued tokens" in error["message"]


def test_anthropic_batch_over_the_token_quota_gets_a_rate_limit_error(
    server: harness.RunningServer,
) -> None:
    key = limited_key(server, max_enqueued_tokens={MODEL: 150})
    with server.anthropic(key, max_retries=0) as sdk:
        with pytest.raises(anthropic.RateLimitError) as raised:
            sdk.messages.batches.create(
                requests=[{"custom_id": f"r{i}", "params": params()} for i in range(2)]  # type: ignore[misc]
            )
        assert list(sdk.messages.batches.list()) == []
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].startswith(f"Enqueued token limit reached for {MODEL}")


def test_native_batch_within_the_quota_is_admitted_and_the_next_one_is_not(
    server: harness.RunningServer,
) -> None:
    key = limited_key(server, max_enqueued_tokens={MODEL: 250})
    body = {
        "requests": [{"custom_id": "a", "params": params()}, {"custom_id": "b", "params": params()}]
    }
    with server.client(key) as client:
        assert client.post("/v1/batches", json=body).status_code == 200
        refused = client.post("/v1/batches", json=body)
        listed = client.get("/v1/batches").json()["data"]
        files = client.get("/v1/files").json()["data"]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "token_limit_exceeded"
    assert refused.json()["error"]["type"] == "tokens"
    assert len(listed) == 1 and len(files) == 1  # the refused batch kept no input file either


def test_another_key_is_not_held_back_by_a_key_over_its_quota(
    server: harness.RunningServer,
) -> None:
    key = limited_key(server, max_enqueued_tokens={MODEL: 100})
    body = {"requests": [{"custom_id": "a", "params": params()}]}
    with server.client(key) as limited, server.client(server.new_key()) as other:
        assert limited.post("/v1/batches", json=body).status_code == 429
        assert other.post("/v1/batches", json=body).status_code == 200


def test_active_batch_quota_over_the_api(server: harness.RunningServer) -> None:
    key = limited_key(server, max_active_batches=1)
    body = {"requests": [{"custom_id": "a", "params": params("hi")}]}
    with server.client(key) as client:
        assert client.post("/v1/batches", json=body).status_code == 200
        refused = client.post("/v1/batches", json=body)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "batch_limit_exceeded"


def test_configured_storage_quota_refuses_an_upload_and_keeps_nothing(
    server: harness.RunningServer,
) -> None:
    key = server.new_key()
    with server.openai(key, max_retries=0) as sdk:
        sdk.files.create(file=("a.jsonl", io.BytesIO(b"x" * 6000)), purpose="batch")
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.files.create(file=("b.jsonl", io.BytesIO(b"x" * 6000)), purpose="batch")
        assert [f.filename for f in sdk.files.list()] == ["a.jsonl"]
    assert raised.value.code == "storage_limit_exceeded"


def test_requests_per_batch_quota_is_413(server: harness.RunningServer) -> None:
    key = limited_key(server, max_requests_per_batch=1)
    body = {"requests": [{"custom_id": c, "params": params("hi")} for c in "ab"]}
    with server.client(key) as client:
        response = client.post("/v1/batches", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"


def test_key_quotas_are_shown_to_admins(server: harness.RunningServer) -> None:
    with server.client() as admin:
        created = admin.post(
            "/v1/keys", json={"name": "q", "quotas": {"max_enqueued_tokens": {MODEL: 5}}}
        ).json()
        shown = admin.get(f"/v1/keys/{created['id']}").json()
    assert shown["quotas"]["max_enqueued_tokens"] == {MODEL: 5}


def test_a_quota_below_one_is_refused(server: harness.RunningServer) -> None:
    with server.client() as admin:
        response = admin.post("/v1/keys", json={"name": "q", "quotas": {"max_active_batches": 0}})
    assert response.status_code == 400
    assert "quotas.max_active_batches" in response.json()["error"]["message"]


def test_a_key_full_on_every_model_is_refused_without_reading_its_requests(
    server: harness.RunningServer,
) -> None:
    key = limited_key(server, max_enqueued_tokens={MODEL: 106})  # one request's worth
    with server.client(key) as client:
        one = {"requests": [{"custom_id": "a", "params": params()}]}
        assert client.post("/v1/batches", json=one).status_code == 200
        # Not even valid: the key is full, so the body is never parsed.
        refused = client.post("/v1/batches", content=b"{not json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "token_limit_exceeded"
