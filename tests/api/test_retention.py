"""Retention over real HTTP: expiry policies accepted and rendered as OpenAI
does, and expired results and files answering 404 saying so, in each
dialect's envelope, while the batch object keeps its counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from batchgate import config
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"
ENDPOINT = "/v1/chat/completions"


def settings_for(tmp_path: Path, upstream: FakeUpstream, **retention: Any) -> config.Settings:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models)
    settings.retention = config.RetentionSettings(**{"sweep_seconds": 0.05, **retention})
    return settings


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    with harness.serve(settings_for(tmp_path, upstream)) as running:
        yield running


@pytest.fixture
def short_lived(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """Results kept one second after their batch ends (the shortest there is:
    retention counts whole seconds, and 0 keeps forever)."""
    with harness.serve(settings_for(tmp_path, upstream, results_seconds=1)) as running:
        yield running


def input_file() -> bytes:
    line = {
        "custom_id": "r0",
        "method": "POST",
        "url": ENDPOINT,
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    }
    return json.dumps(line).encode()


def inline(custom_id: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": f"say {custom_id}"}],
        },
    }


def sdk(server: harness.RunningServer) -> openai.OpenAI:
    return server.openai(server.api_key, max_retries=0)


def wait_purged(
    server: harness.RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    batch_id: str,
    timeout: float = 30,
) -> None:
    """Move the clock past the results' second of retention, then wait until
    the server's retention sweep has removed the batch's request rows (the
    sweep and the 404s read the same clock; no second passes for real)."""
    harness.advance_clock(monkeypatch, 2)
    harness.wait_until(
        lambda: not list(server.store.iter_results(batch_id)),
        timeout,
        "the sweep to purge the batch",
    )


def test_upload_expires_after_sets_the_files_expires_at(server: harness.RunningServer) -> None:
    with sdk(server) as client:
        uploaded = client.files.create(
            file=("in.jsonl", input_file()),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 7200},
        )
        retrieved = client.files.retrieve(uploaded.id)
    assert uploaded.expires_at == uploaded.created_at + 7200
    assert retrieved.expires_at == uploaded.expires_at


def test_an_upload_without_a_policy_expires_after_the_default_30_days(
    server: harness.RunningServer,
) -> None:
    with sdk(server) as client:
        uploaded = client.files.create(file=("in.jsonl", input_file()), purpose="batch")
    assert uploaded.expires_at == uploaded.created_at + 30 * 86400


def test_an_out_of_range_expires_after_is_a_400_naming_the_field(
    server: harness.RunningServer,
) -> None:
    with sdk(server) as client, pytest.raises(openai.BadRequestError) as caught:
        client.files.create(
            file=("in.jsonl", input_file()),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 60},
        )
    assert caught.value.body["param"] == "expires_after.seconds"  # type: ignore[index]
    assert "3600" in caught.value.message


def test_output_expires_after_dates_the_output_file_from_the_batchs_end(
    server: harness.RunningServer,
) -> None:
    with sdk(server) as client:
        file_id = client.files.create(file=("in.jsonl", input_file()), purpose="batch").id
        created = client.batches.create(
            input_file_id=file_id,
            endpoint=ENDPOINT,
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 3600},
        )
        ended = server.wait_ended(created.id)
        output = client.files.retrieve(ended["output_file_id"])
    assert output.expires_at == output.created_at + 3600
    assert output.created_at == ended["completed_at"]


def test_a_bad_output_expires_after_is_a_400_and_stores_no_batch(
    server: harness.RunningServer,
) -> None:
    with sdk(server) as client:
        file_id = client.files.create(file=("in.jsonl", input_file()), purpose="batch").id
        with pytest.raises(openai.BadRequestError) as caught:
            client.batches.create(
                input_file_id=file_id,
                endpoint=ENDPOINT,
                completion_window="24h",
                output_expires_after={"anchor": "created_at", "seconds": 9_999_999},
            )
        assert list(client.batches.list()) == []
    assert caught.value.body["param"] == "output_expires_after.seconds"  # type: ignore[index]


def test_expired_native_results_are_a_404_saying_so_and_the_batch_keeps_its_counts(
    short_lived: harness.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with short_lived.client() as client:
        batch = client.post("/v1/batches", json={"requests": [inline("a"), inline("b")]}).json()
        short_lived.wait_ended(batch["id"])
        wait_purged(short_lived, monkeypatch, batch["id"])
        results = client.get(f"/v1/batches/{batch['id']}")
        described = client.get(f"/v1/batches/{batch['id']}", headers={"accept": "application/json"})
    assert results.status_code == 404
    assert results.json()["error"]["code"] == "expired"
    assert "expired at" in results.json()["error"]["message"]
    assert described.status_code == 200
    assert described.json()["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert described.json()["usage"]["output_tokens"] > 0


def test_expired_openai_result_files_are_a_404_saying_so(
    short_lived: harness.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sdk(short_lived) as client:
        file_id = client.files.create(file=("in.jsonl", input_file()), purpose="batch").id
        batch = client.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h"
        )
        ended = short_lived.wait_ended(batch.id)
        wait_purged(short_lived, monkeypatch, batch.id)
        with pytest.raises(openai.NotFoundError) as caught:
            client.files.content(ended["output_file_id"])
        listed = [item.id for item in client.files.list()]
    assert "expired at" in caught.value.message
    assert ended["output_file_id"] not in listed


def test_an_expired_anthropic_batch_is_archived_and_its_results_are_a_404(
    short_lived: harness.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with short_lived.anthropic(short_lived.api_key, max_retries=0) as client:
        created = client.messages.batches.create(requests=[inline("a")])  # type: ignore[list-item]
        harness.wait_until(
            lambda: client.messages.batches.retrieve(created.id).processing_status == "ended",
            30,
            "the batch to end",
        )
        wait_purged(short_lived, monkeypatch, created.id)
        archived = client.messages.batches.retrieve(created.id)
        with pytest.raises(anthropic.NotFoundError) as caught:
            list(client.messages.batches.results(created.id))
    assert archived.archived_at is not None and archived.ended_at is not None
    assert archived.request_counts.succeeded == 1
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert "expired at" in caught.value.message


def test_retry_of_a_batch_whose_results_expired_is_a_404(
    short_lived: harness.RunningServer, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.script_for("say a", "400")
    with short_lived.client() as client:
        batch = client.post("/v1/batches", json={"requests": [inline("a")]}).json()
        short_lived.wait_ended(batch["id"])
        wait_purged(short_lived, monkeypatch, batch["id"])
        response = client.post(f"/v1/batches/{batch['id']}/retry")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "expired"
