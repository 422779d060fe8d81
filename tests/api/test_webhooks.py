"""Webhooks over real HTTP: endpoints per key, signed events from the outbox
to a real receiver on 127.0.0.1, retried, and every delivery visible."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks.webhooks import Webhook

from batchgate import config
from tests import harness
from tests.fakes.receiver import WebhookReceiver
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"
HANG = {"kind": "hang", "hang_seconds": 120}
TERMINAL = {"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"}


def fast_webhooks(**extra: Any) -> config.WebhookSettings:
    values: dict[str, Any] = {
        "allow_private_addresses": True,  # the receiver is on loopback
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "poll_seconds": 0.05,
        "progress_seconds": 0.05,
        "timeout_seconds": 5,
        **extra,
    }
    return config.WebhookSettings(**values)


def _serve(
    tmp_path: Path, upstream: FakeUpstream, webhooks: config.WebhookSettings, window: int = 3600
) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models, max_attempts=1)
    settings.webhooks = webhooks
    settings.completion_window_seconds = window
    with harness.serve(settings) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    yield from _serve(tmp_path, upstream, fast_webhooks())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def params(text: str) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


def native_batch(http: httpx.Client, *texts: str) -> str:
    body = {"requests": [{"custom_id": t, "params": params(t)} for t in texts]}
    batch_id: str = http.post("/v1/batches", json=body).json()["id"]
    return batch_id


def register(http: httpx.Client, url: str, **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/webhook_endpoints", json={"url": url, **extra})
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


def deliveries(http: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = http.get(
        f"/v1/webhook_endpoints/{endpoint_id}/deliveries", params={"limit": 100}
    ).json()["data"]
    return data


def failed_file_batch(server: harness.RunningServer) -> str:
    """An OpenAI file batch whose input has a bad line: it ends ``failed``
    at validation."""
    with server.openai(server.api_key) as client:
        file_id = client.files.create(file=("in.jsonl", b"not json\n"), purpose="batch").id
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert batch.status == "failed"
    return batch.id


def test_endpoint_secret_is_shown_once(server: harness.RunningServer) -> None:
    with server.client() as http:
        created = register(http, "https://hooks.example.com/batch", description="ci")
        fetched = http.get(f"/v1/webhook_endpoints/{created['id']}").json()
        listed = http.get("/v1/webhook_endpoints").json()
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == sorted(TERMINAL, key=list(created["event_types"]).index)
    assert set(created["event_types"]) == TERMINAL
    assert "secret" not in fetched and fetched["url"] == "https://hooks.example.com/batch"
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert "secret" not in listed["data"][0]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("https:///nohost", "must name a host"),
        ("http://127.0.0.1:9/hooks", "allow_private_addresses"),
        ("http://localhost/hooks", "allow_private_addresses"),
        ("http://169.254.169.254/latest/meta-data", "allow_private_addresses"),
    ],
)
def test_endpoint_url_must_be_http_and_not_internal_by_default(
    tmp_path: Path, upstream: FakeUpstream, url: str, says: str
) -> None:
    for running in _serve(tmp_path, upstream, config.WebhookSettings()):
        with running.client() as http:
            response = http.post("/v1/webhook_endpoints", json={"url": url})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "url"
        assert says in response.json()["error"]["message"]


def test_endpoints_belong_to_their_key(server: harness.RunningServer) -> None:
    other = server.new_key("other")
    with server.client() as http:
        endpoint = register(http, "https://hooks.example.com/a")
    with server.client(other) as http:
        assert http.get(f"/v1/webhook_endpoints/{endpoint['id']}").status_code == 404
        assert http.delete(f"/v1/webhook_endpoints/{endpoint['id']}").status_code == 404
        assert http.get("/v1/webhook_endpoints").json()["data"] == []


def test_every_terminal_event_arrives_once_though_the_first_three_attempts_fail(
    tmp_path: Path,
    upstream: FakeUpstream,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upstream.script_for("will-expire", HANG)
    upstream.script_for("will-cancel", HANG)
    receiver.fail_first(3)
    webhooks = fast_webhooks()
    # Five of the longest retry intervals (and polls): a duplicate would show.
    settle = 5 * (webhooks.backoff_max_seconds + webhooks.poll_seconds)
    for server in _serve(tmp_path, upstream, webhooks, window=30):
        with server.client() as http:
            endpoint = register(http, receiver.url)
            completed = native_batch(http, "fine")
            cancelled = native_batch(http, "will-cancel")
            expired = native_batch(http, "will-expire")
            failed = failed_file_batch(server)
            http.post(f"/v1/batches/{cancelled}/cancel")
            receiver.wait_for(lambda r: len(r.accepted_ids()) == 3)
            # The other three ended; now past the window at once (within the
            # hanging call's 60 s lease; signatures are dated by the real clock).
            harness.advance_clock(monkeypatch, 31)
            receiver.wait_for(lambda r: len(r.accepted_ids()) == 4)
            # A duplicate would come a retry interval or more after its
            # acceptance: give it several before counting.
            time.sleep(settle)
            shown = deliveries(http, endpoint["id"])
        expected = {
            completed: "batch.completed",
            cancelled: "batch.cancelled",
            expired: "batch.expired",
            failed: "batch.failed",
        }
        unique = receiver.events()
        assert {r.event["data"]["id"]: r.event["type"] for r in unique.values()} == expected
        raw = receiver.received()
        # Three refusals and one acceptance of each message, all the same message.
        assert sorted(r.webhook_id for r in raw) == sorted(list(unique) * 4)
        for item in raw:
            assert item.body == unique[item.webhook_id].body
            verified = Webhook(endpoint["secret"]).verify(item.body, item.headers)
            assert verified == json.loads(item.body)
        assert {d["status"] for d in shown} == {"delivered"}
        assert {d["attempts"] for d in shown} == {4}
        assert {d["id"] for d in shown} == set(unique)


def test_signatures_verify_with_standardwebhooks_and_the_openai_sdk(
    server: harness.RunningServer, receiver: WebhookReceiver
) -> None:
    with server.client() as http:
        endpoint = register(http, receiver.url)
        batch_id = native_batch(http, "hello")
    receiver.wait_for(lambda r: len(r.accepted_ids()) == 1)
    (item,) = receiver.received()
    event = Webhook(endpoint["secret"]).verify(item.body, item.headers)
    assert event == {
        "id": event["id"],
        "object": "event",
        "created_at": event["created_at"],
        "type": "batch.completed",
        "data": {"id": batch_id},
    }
    assert event["id"].startswith("evt_") and item.webhook_id.startswith("msg_")
    with openai.OpenAI(api_key="unused", webhook_secret=endpoint["secret"]) as sdk:
        unwrapped = sdk.webhooks.unwrap(item.body, item.headers)
    assert (unwrapped.type, unwrapped.data.id) == ("batch.completed", batch_id)
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(item.body + b" ", item.headers)


def test_failing_deliveries_show_their_attempts_and_last_error(
    server: harness.RunningServer, receiver: WebhookReceiver
) -> None:
    receiver.fail_first(1000)
    with server.client() as http:
        endpoint = register(http, receiver.url)
        batch_id = native_batch(http, "hello")
        shown = harness.wait_until(
            lambda: (
                (found := deliveries(http, endpoint["id"])) and found[0]["attempts"] >= 2 and found
            ),
            30,
            "a second delivery attempt",
        )
    (delivery,) = shown
    assert delivery["status"] == "pending" and delivery["batch_id"] == batch_id
    assert delivery["last_status_code"] == 503
    assert delivery["last_error"] == "HTTP 503: no"
    assert delivery["event"]["type"] == "batch.completed"
    assert delivery["delivered_at"] is None


def test_deleting_an_endpoint_discards_what_it_has_not_received(
    server: harness.RunningServer, receiver: WebhookReceiver
) -> None:
    receiver.fail_first(1000)
    with server.client() as http:
        endpoint = register(http, receiver.url)
        native_batch(http, "hello")
        receiver.wait_for(lambda r: len(r.received()) >= 1)
        assert http.delete(f"/v1/webhook_endpoints/{endpoint['id']}").json()["deleted"] is True
        assert http.get(f"/v1/webhook_endpoints/{endpoint['id']}").status_code == 404
    rows = server.store.list_webhook_deliveries(endpoint["id"], limit=10)[0]
    assert [row.status.value for row in rows] == ["discarded"]


def test_an_endpoint_gets_only_the_event_types_it_asked_for(
    server: harness.RunningServer, receiver: WebhookReceiver
) -> None:
    with server.client() as http:
        endpoint = register(http, receiver.url, event_types=["batch.failed"])
        completed = native_batch(http, "hello")
        server.wait_ended(completed)
        failed = failed_file_batch(server)
    receiver.wait_for(lambda r: len(r.accepted_ids()) == 1)
    (item,) = receiver.events().values()
    assert (item.event["type"], item.event["data"]["id"]) == ("batch.failed", failed)
    # The completed batch ended first, and left no delivery row behind.
    rows = server.store.list_webhook_deliveries(endpoint["id"], limit=10)[0]
    assert [row.batch_id for row in rows] == [failed]


def test_progress_events_only_for_endpoints_that_opt_in(
    server: harness.RunningServer, upstream: FakeUpstream, receiver: WebhookReceiver
) -> None:
    upstream.script_for("slow-0", HANG)
    upstream.script_for("slow-1", HANG)
    with server.client() as http:
        quiet = register(http, receiver.url + "?quiet")
        loud = register(http, receiver.url + "?loud", progress_every_percent=50)
        batch_id = native_batch(http, "ok-0", "slow-0", "ok-1", "slow-1")
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 1)
        (progress,) = receiver.events().values()
        assert progress.event["type"] == "batch.progress"
        assert progress.event["data"] == {
            "id": batch_id,
            "percent": 50,
            "request_counts": {"total": 4, "finished": 2},
        }
        http.post(f"/v1/batches/{batch_id}/cancel")
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 3)
        assert [d["event_type"] for d in deliveries(http, quiet["id"])] == ["batch.cancelled"]
        assert [d["event_type"] for d in deliveries(http, loud["id"])] == [
            "batch.cancelled",
            "batch.progress",
        ]
    assert json.loads(progress.body)["object"] == "event"


def test_a_progress_event_reads_as_the_readme_says(
    server: harness.RunningServer, upstream: FakeUpstream, receiver: WebhookReceiver
) -> None:
    """batch.progress is not an OpenAI event: the SDK's unwrap types it as an
    unrelated class, so docs/webhooks.md reads it by verifying the signature and
    parsing the JSON (the SDK's verify_signature, or standardwebhooks)."""
    upstream.script_for("slow-0", HANG)
    with server.client() as http:
        loud = register(http, receiver.url, progress_every_percent=50)
        batch_id = native_batch(http, "ok-0", "slow-0")
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 1)
        (item,) = receiver.events().values()
        http.post(f"/v1/batches/{batch_id}/cancel")
    with openai.OpenAI(api_key="unused", webhook_secret=loud["secret"]) as client:
        misread = client.webhooks.unwrap(item.body, item.headers)
        # As docs/webhooks.md shows it:
        client.webhooks.verify_signature(item.body, item.headers)
        event = json.loads(item.body)
    assert misread.type == "batch.progress" and not type(misread).__name__.startswith("Batch")
    assert Webhook(loud["secret"]).verify(item.body, item.headers) == event
    assert (event["type"], event["data"]["id"], event["data"]["percent"]) == (
        "batch.progress",
        batch_id,
        50,
    )
