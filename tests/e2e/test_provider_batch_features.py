"""Everything else keeps working for a provider-batch model (issue 19): an
``openai_batch`` model on the fake upstream's Files + Batches routes (in
this process's threads, on 127.0.0.1), served by the app and its worker in
process, as a tenant uses them.

* progress and partial results: a batch spanning two upstream jobs shows
  the first job's rows as results while the second job is held upstream;
* webhooks: a progress event when the first job's rows land, then
  ``batch.completed``;
* retry: a row the upstream answered with a final error ends errored, and
  the retry route's child batch runs it again through a new job;
* quotas: the enqueued-token quota refuses a batch over it, as for any model;
* estimate: a dry run's ETA is the measured job turnaround once a job ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchgate import config
from batchgate.domain import upstream_jobs as uj
from tests import harness
from tests.fakes.receiver import WebhookReceiver
from tests.fakes.upstream import FakeUpstream

MODEL = "gpt-batch"
JOB_SIZE = 3
FLUSH_AFTER_SECONDS = 0.2
WAIT = 60.0
# ~106 estimated input tokens each (four characters a token).
LONG_TEXT = "abcd" * 100


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """The app and its worker; ``MODEL`` goes through the fake's batch API in
    jobs of at most ``JOB_SIZE`` rows, flushed and polled within a second."""
    model = harness.openai_batch_model(
        MODEL,
        upstream.openai_base_url,
        api_key="k",
        max_requests_per_job=JOB_SIZE,
        flush_after_seconds=FLUSH_AFTER_SECONDS,
        poll_seconds=0.05,
        poll_max_seconds=0.2,
        price={"input": 2.0, "output": 6.0},
    )
    settings = harness.make_settings(tmp_path, {MODEL: model}, max_attempts=2)
    settings.webhooks = config.WebhookSettings(
        allow_private_addresses=True,  # the receiver is on loopback
        backoff_base_seconds=0.05,
        backoff_max_seconds=0.2,
        poll_seconds=0.05,
    )
    with harness.serve(settings) as running:
        yield running


def request(custom_id: str, text: str | None = None) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text or f"text {custom_id}"}],
        },
    }


def create(http: httpx.Client, *custom_ids: str) -> str:
    response = http.post("/v1/batches", json={"requests": [request(c) for c in custom_ids]})
    assert response.status_code == 200, response.text
    batch_id: str = response.json()["id"]
    return batch_id


def batch_object(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    found: dict[str, Any] = http.get(
        f"/v1/batches/{batch_id}", headers={"accept": "application/json"}
    ).json()
    return found


def results(http: httpx.Client, batch_id: str) -> dict[str, dict[str, Any]]:
    """custom_id -> result, of the rows that have finished (partial while
    the batch runs)."""
    text = http.get(f"/v1/batches/{batch_id}/results").text
    return {line["custom_id"]: line["result"] for line in map(json.loads, text.splitlines())}


def upstream_batches(upstream: FakeUpstream) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = upstream.batches()["batches"]
    return found


def held_jobs(upstream: FakeUpstream, count: int) -> list[dict[str, Any]]:
    """The upstream batches once ``count`` exist (held: the fake's ``hold``)."""
    return harness.wait_until(
        lambda: len(upstream_batches(upstream)) >= count and upstream_batches(upstream),
        WAIT,
        f"{count} upstream batches",
    )


def spanning_batch(
    server: harness.RunningServer, upstream: FakeUpstream, http: httpx.Client
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A five-row batch in two held upstream jobs (three rows, then two);
    the first has ended, the second is still held. Returns the batch id and
    the two upstream batches."""
    upstream.configure(hold=True)
    batch_id = create(http, *(f"r{i}" for i in range(5)))
    first, second = sorted(held_jobs(upstream, 2), key=lambda b: -len(b["custom_ids"]))
    assert (len(first["custom_ids"]), len(second["custom_ids"])) == (3, 2)
    upstream.batch_control(first["id"], end="completed")
    return batch_id, first, second


def test_a_batch_spanning_two_jobs_shows_the_first_jobs_rows_while_the_second_is_held(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    with server.client() as http:
        batch_id, _, second = spanning_batch(server, upstream, http)
        progress = harness.wait_until(
            lambda: (
                (seen := batch_object(http, batch_id))["request_counts"]["completed"] == 3 and seen
            ),
            WAIT,
            "the first job's rows to count as done",
        )
        assert progress["status"] == "in_progress"
        assert progress["request_counts"] == {"total": 5, "completed": 3, "failed": 0}
        partial = results(http, batch_id)
        assert sorted(partial) == ["r0", "r1", "r2"]
        for custom_id, result in partial.items():
            assert result["type"] == "succeeded"
            assert result["message"]["content"][0]["text"] == f"echo: text {custom_id}"
        # The batch's page lists both jobs: one ended, one still at the provider.
        jobs = server.store.jobs_for_batch(batch_id)
        assert sorted(job.state for job in jobs) == [uj.JobState.ENDED, uj.JobState.SUBMITTED]
        # The held job's rows show as generating (the provider has them),
        # not as claimed and waiting for a call slot.
        tally = harness.wait_until(
            lambda: (t := server.store.tally(batch_id)).generating == 2 and t,
            WAIT,
            "the held job's rows to show as generating",
        )
        assert tally.claimed == 0
        upstream.batch_control(second["id"], end="completed")
        ended = server.wait_ended(batch_id, WAIT)
    assert ended["status"] == "completed"
    assert ended["request_counts"] == {"total": 5, "completed": 5, "failed": 0}


def register(http: httpx.Client, url: str, **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/webhook_endpoints", json={"url": url, **extra})
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


def test_webhooks_tell_of_the_first_jobs_rows_and_of_the_batchs_end(
    server: harness.RunningServer, upstream: FakeUpstream, receiver: WebhookReceiver
) -> None:
    with server.client() as http:
        register(http, receiver.url, progress_every_percent=50)
        batch_id, _, second = spanning_batch(server, upstream, http)
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 1, WAIT)
        (progress,) = (item.event for item in receiver.events().values())
        assert progress["type"] == "batch.progress"
        assert progress["data"] == {
            "id": batch_id,
            "percent": 50,
            "request_counts": {"total": 5, "finished": 3},
        }
        upstream.batch_control(second["id"], end="completed")
        receiver.wait_for(lambda r: len(r.accepted_ids()) == 2, WAIT)
    events = [item.event for item in receiver.events().values()]
    assert [(e["type"], e["data"]["id"]) for e in events[1:]] == [("batch.completed", batch_id)]


def test_a_row_the_upstream_refused_is_retried_through_a_new_job(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("text r1", "400")  # a final error, inside its result line
    with server.client() as http:
        parent = create(http, "r0", "r1", "r2")
        ended = server.wait_ended(parent, WAIT)
        assert ended["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
        refused = results(http, parent)["r1"]
        assert refused["type"] == "errored"
        # The upstream's answer in batchgate's error types, as a real-time call's.
        assert refused["error"]["error"]["type"] == "invalid_request_error"
        assert "HTTP 400" in refused["error"]["error"]["message"]
        response = http.post(f"/v1/batches/{parent}/retry")
        assert response.status_code == 200, response.text
        child = response.json()["id"]
        assert server.wait_ended(child, WAIT)["request_counts"] == {
            "total": 1,
            "completed": 1,
            "failed": 0,
        }
        rerun = results(http, child)
    assert list(rerun) == ["r1"] and rerun["r1"]["type"] == "succeeded"
    assert rerun["r1"]["message"]["content"][0]["text"] == "echo: text r1"
    (first_job,) = server.store.jobs_for_batch(parent)
    (second_job,) = server.store.jobs_for_batch(child)
    assert first_job.id != second_job.id
    assert [len(b["custom_ids"]) for b in upstream_batches(upstream)] == [3, 1]


def test_the_enqueued_token_quota_refuses_a_batch_over_it(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    with server.client() as admin:
        created = admin.post(
            "/v1/keys", json={"name": "limited", "quotas": {"max_enqueued_tokens": {MODEL: 150}}}
        )
    assert created.status_code == 200, created.text
    upstream.configure(hold=True)  # what is admitted stays enqueued
    with server.client(created.json()["value"]) as http:
        one = {"requests": [request("a", LONG_TEXT)]}
        two = {"requests": [request("b", LONG_TEXT), request("c", LONG_TEXT)]}
        refused = http.post("/v1/batches", json=two)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "token_limit_exceeded"
        assert http.post("/v1/batches", json=one).status_code == 200
        again = http.post("/v1/batches", json=one)  # 106 enqueued + 106 > 150
        listed = http.get("/v1/batches").json()["data"]
    assert again.status_code == 429 and again.json()["error"]["code"] == "token_limit_exceeded"
    assert len(listed) == 1


def test_a_dry_run_eta_is_the_measured_job_turnaround_once_a_job_ended(
    server: harness.RunningServer,
) -> None:
    with server.client() as http:
        before = harness.dry_run_eta(http, request("a"))
        assert (before["throughput_source"], before["sample_jobs"]) == ("job_turnaround", 0)
        assert before["min_seconds"] is None and before["turnaround_seconds"] is None
        server.wait_ended(create(http, "r0", "r1"), WAIT)
        after = harness.dry_run_eta(http, request("a"))
    (job,) = server.store.list_jobs(model=MODEL)
    assert job.submitted_at is not None and job.ended_at is not None
    turnaround = job.ended_at - job.submitted_at
    assert after["sample_jobs"] == 1
    # Seconds to a tenth, as the estimate shows them.
    assert after["turnaround_seconds"] == round(turnaround, 1)
    assert after["min_seconds"] == round(turnaround, 1)
    assert after["max_seconds"] == round(turnaround + FLUSH_AFTER_SECONDS, 1)
