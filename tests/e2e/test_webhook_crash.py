"""Webhooks survive SIGKILL: a batch's terminal event is in the outbox the
moment the batch ends, so a server killed before (or while) delivering it
delivers it after the restart, and the receiver sees each event once after
deduplicating on ``webhook-id``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e import processes
from tests.fakes.receiver import WebhookReceiver
from tests.fakes.upstream import RemoteUpstream, start_process

pytestmark = pytest.mark.slow

MODEL = "fake-chat"
HANG = {"kind": "hang", "hang_seconds": 60}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        url: str = request.getfixturevalue("store_url_postgres")
        return url
    return None


@pytest.fixture
def upstream() -> Iterator[RemoteUpstream]:
    with start_process("--no-log-bodies") as remote:
        yield remote


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def config(tmp_path: Path, upstream: RemoteUpstream, name: str, **webhooks: Any) -> Path:
    return processes.write_config(
        tmp_path / f"{name}.toml",
        {MODEL: {"backend": "openai_compatible", "base_url": upstream.openai_base_url}},
        worker={"max_attempts": 1, "poll_seconds": 0.05, "sweep_seconds": 0.2},
        tables={
            "batches": {"completion_window": "4s"},
            "webhooks": {
                "allow_private_addresses": True,  # the receiver is on loopback
                "backoff_base_seconds": 0.05,
                "backoff_max_seconds": 0.2,
                "poll_seconds": 0.05,
                **webhooks,
            },
        },
    )


def native_batch(http: httpx.Client, text: str) -> str:
    params = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
    batch_id: str = http.post(
        "/v1/batches", json={"requests": [{"custom_id": text, "params": params}]}
    ).json()["id"]
    return batch_id


def failed_file_batch(http: httpx.Client) -> str:
    file_id = http.post(
        "/v1/files", files={"file": ("in.jsonl", b"not json\n")}, data={"purpose": "batch"}
    ).json()["id"]
    batch = http.post(
        "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    ).json()
    assert batch["status"] == "failed"
    batch_id: str = batch["id"]
    return batch_id


def deliveries(http: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = http.get(
        f"/v1/webhook_endpoints/{endpoint_id}/deliveries", params={"limit": 100}
    ).json()["data"]
    return data


def test_events_of_batches_ended_before_a_sigkill_arrive_once_after_restart(
    tmp_path: Path,
    upstream: RemoteUpstream,
    receiver: WebhookReceiver,
    database_url: str | None,
) -> None:
    upstream.configure(by_fingerprint={"will-expire": [HANG], "will-cancel": [HANG]})
    # The first server looks for due deliveries at start and then not for a
    # minute: the batches end, their events wait in the outbox, and the kill
    # lands between the batches ending and any delivery.
    sleepy = config(tmp_path, upstream, "sleepy", poll_seconds=60)
    normal = config(tmp_path, upstream, "normal")
    port = processes.free_port()
    with (
        processes.serve(sleepy, tmp_path, port, database_url=database_url) as server,
        processes.client(port) as http,
    ):
        endpoint = http.post("/v1/webhook_endpoints", json={"url": receiver.url}).json()
        expected = {
            native_batch(http, "fine"): "batch.completed",
            native_batch(http, "will-expire"): "batch.expired",
            failed_file_batch(http): "batch.failed",
        }
        cancelled = native_batch(http, "will-cancel")
        http.post(f"/v1/batches/{cancelled}/cancel")
        expected[cancelled] = "batch.cancelled"
        for batch_id in expected:
            processes.wait_for(http, batch_id, lambda b: b["status"] in processes.ENDED)
        waiting = deliveries(http, endpoint["id"])
        server.kill()
    assert sorted(d["batch_id"] for d in waiting) == sorted(expected)
    assert {(d["status"], d["attempts"]) for d in waiting} == {("pending", 0)}
    assert receiver.received() == []

    with (
        processes.serve(normal, tmp_path, port, database_url=database_url),
        processes.client(port) as http,
    ):
        receiver.wait_for(lambda r: len(r.accepted_ids()) == len(expected))
        shown = deliveries(http, endpoint["id"])
    events = receiver.events()
    assert {r.event["data"]["id"]: r.event["type"] for r in events.values()} == expected
    assert len(receiver.received()) == len(expected)  # none was ever attempted twice
    for item in receiver.received():
        Webhook(endpoint["secret"]).verify(item.body, item.headers)
    assert {(d["status"], d["attempts"]) for d in shown} == {("delivered", 1)}


def test_an_event_whose_sender_was_killed_mid_delivery_is_sent_again_with_the_same_id(
    tmp_path: Path, upstream: RemoteUpstream, receiver: WebhookReceiver
) -> None:
    # On SQLite only: the lease that lapses is the store contract's, tested
    # on both databases (tests/contract/test_webhook_store.py).
    database_url = None
    # Short leases: the restarted server resends the dead one's delivery soon.
    settings = config(tmp_path, upstream, "c", timeout_seconds=2, lease_seconds=2)
    port = processes.free_port()
    receiver.hold()  # take the first delivery and never answer it
    with (
        processes.serve(settings, tmp_path, port, database_url=database_url) as server,
        processes.client(port) as http,
    ):
        endpoint = http.post("/v1/webhook_endpoints", json={"url": receiver.url}).json()
        batch_id = native_batch(http, "fine")
        receiver.wait_for(lambda r: len(r.received()) == 1)
        server.kill()
    receiver.release()
    with (
        processes.serve(settings, tmp_path, port, database_url=database_url),
        processes.client(port) as http,
    ):
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 1)
        (shown,) = deliveries(http, endpoint["id"])
    raw = receiver.received()
    assert [r.status for r in raw] == [0, 200]  # held (never answered), then accepted
    assert raw[0].webhook_id == raw[1].webhook_id and raw[0].body == raw[1].body
    (event,) = receiver.events().values()
    assert (event.event["type"], event.event["data"]["id"]) == ("batch.completed", batch_id)
    for item in raw:
        Webhook(endpoint["secret"]).verify(item.body, item.headers)
    assert (shown["status"], shown["attempts"]) == ("delivered", 2)
