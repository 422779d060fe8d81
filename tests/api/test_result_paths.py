"""Which path served each result (issue 19's deadline fallback): a
provider-batch model's result lines carry one extension field,
``served_by`` ("batch": the provider's batch API; "realtime": the
fallback), in all three dialects, once a path answered the row. Every other
model's lines keep exactly the keys they always had.

The provider-batch model's outcomes are written through the store's port
(SQLite), as the upstream-job driver and the real-time lane write them: no
worker runs, so which row took which path is the test's to say."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from batchgate.canonical import chat
from batchgate.domain import batch as bm
from batchgate.domain import failures
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from tests import harness
from tests.contract import builders
from tests.fakes.upstream import FakeUpstream

MODEL = "pb-mini"  # openai_batch
PLAIN = "plain"  # openai_compatible, run by the worker on the fake upstream
# What each row comes to, by custom_id: (state, route, the served_by its line
# shows). r3 is routed to the real-time path, then its batch is cancelled
# before it runs: neither path served it.
PLAN = {
    "r0": (RequestState.SUCCEEDED, uj.Path.BATCH, "batch"),
    "r1": (RequestState.SUCCEEDED, uj.Path.REALTIME, "realtime"),
    "r2": (RequestState.ERRORED, uj.Path.BATCH, "batch"),
    "r3": (RequestState.QUEUED, uj.Path.REALTIME, None),
}
SERVED_BY = {custom_id: served for custom_id, (_, _, served) in PLAN.items()}
# The keys of every line, as the dialect's provider writes them.
MESSAGE_KEYS = {"custom_id", "result"}
OPENAI_KEYS = {"id", "custom_id", "response", "error"}


@pytest.fixture
def routed(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {MODEL: harness.openai_batch_model(MODEL, upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models, database_url=harness.sqlite_url(tmp_path))
    with harness.serve(settings, with_worker=False) as running:
        yield running


@pytest.fixture
def plain(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {PLAIN: harness.openai_model(PLAIN, upstream.openai_base_url)}
    with harness.serve(harness.make_settings(tmp_path, models, max_attempts=1)) as running:
        yield running


def params(model: str, custom_id: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": f"text {custom_id}"}],
    }


def openai_batch(sdk: openai.OpenAI, model: str) -> str:
    lines = [
        {"custom_id": c, "method": "POST", "url": "/v1/chat/completions", "body": params(model, c)}
        for c in PLAN
    ]
    content = "\n".join(json.dumps(line) for line in lines).encode()
    file_id = sdk.files.create(file=("in.jsonl", content), purpose="batch").id
    return sdk.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def anthropic_batch(sdk: anthropic.Anthropic, model: str) -> str:
    requests: Any = [{"custom_id": c, "params": params(model, c)} for c in PLAN]
    return sdk.messages.batches.create(requests=requests).id


def outcome(
    worker: str, request_id: int, attempt: int, custom_id: str, state: RequestState, route: uj.Path
) -> bm.Outcome:
    reply = chat.ChatResponse(
        id=f"msg_{request_id}",
        model=MODEL,
        content=[chat.TextBlock(text=f"answer to {custom_id}")],
        stop_reason="end_turn",
        usage=chat.Usage(input_tokens=3, output_tokens=2),
    )
    ends = {
        RequestState.SUCCEEDED: {"result": reply.model_dump(exclude_none=True)},
        RequestState.ERRORED: {
            "error": failures.RequestError(
                failures.ErrorType.INVALID_REQUEST, "refused upstream", status_code=400
            )
        },
        RequestState.QUEUED: {"not_before": time.time() + 3600},
    }
    return bm.Outcome(request_id, attempt, worker, state, route=route.value, **ends[state])


def settle(server: harness.RunningServer, batch_id: str) -> None:
    """Write ``PLAN`` to the batch's rows as the driver and the real-time
    lane write them: a job holds them all; r1 and r3 fall back to the
    real-time path, where r1 is served and r3 waits for another try; the
    job answers r0 and r2. Then the batch is cancelled (r3 ends canceled)."""
    store = server.store
    now = time.time()
    job = builders.seed_job(store, MODEL, len(PLAN), submitted_at=now)
    held = dict(zip(PLAN, sorted(store.job_requests(job.id), key=lambda r: r.id), strict=True))
    plan = {c: (state, route) for c, (state, route, _) in PLAN.items()}
    fell_back = [held[c].id for c, (_, route) in plan.items() if route is uj.Path.REALTIME]
    assert store.release_job_requests(job.id, fell_back, now, route=uj.Path.REALTIME) == 2
    by_job = [
        outcome(job.id, held[c].id, held[c].attempt, c, state, route)
        for c, (state, route) in plan.items()
        if route is uj.Path.BATCH
    ]
    by_lane = [
        outcome("w", row.id, row.attempt, row.custom_id, plan[row.custom_id][0], uj.Path.REALTIME)
        for row in store.claim(MODEL, 10, "w", now, builders.LEASE, route="realtime")
    ]
    assert store.record_outcomes(by_job + by_lane, now) == [True] * len(PLAN)
    batch = store.get_batch(batch_id)
    assert batch is not None
    store.cancel_batch(batch_id, batch.owner, now)
    assert store.finalize_batches(now, [batch_id]) == [batch_id]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def openai_lines(sdk: openai.OpenAI, batch_id: str) -> list[dict[str, Any]]:
    """The output file's lines, then the error file's."""
    batch = sdk.batches.retrieve(batch_id)
    assert batch.output_file_id is not None and batch.error_file_id is not None, batch
    return [
        *jsonl(sdk.files.content(batch.output_file_id).text),
        *jsonl(sdk.files.content(batch.error_file_id).text),
    ]


def check_message_lines(lines: list[dict[str, Any]]) -> None:
    assert [line["custom_id"] for line in lines] == list(PLAN)
    for line in lines:
        served = SERVED_BY[line["custom_id"]]
        assert set(line) == MESSAGE_KEYS | ({"served_by"} if served else set()), line
        assert line.get("served_by") == served
    types = [line["result"]["type"] for line in lines]
    assert types == ["succeeded", "succeeded", "errored", "canceled"]


def test_native_lines_say_which_path_served_each_row(routed: harness.RunningServer) -> None:
    batch_id = routed.submit(MODEL, [f"text r{i}" for i in range(len(PLAN))])
    settle(routed, batch_id)
    with routed.client() as http:
        check_message_lines(jsonl(http.get(f"/v1/batches/{batch_id}/results").text))
        # The ended batch's own URL streams the same lines.
        check_message_lines(jsonl(http.get(f"/v1/batches/{batch_id}").text))


def test_openai_output_and_error_lines_carry_their_keys_and_served_by(
    routed: harness.RunningServer,
) -> None:
    with routed.openai(max_retries=0) as sdk:
        batch_id = openai_batch(sdk, MODEL)
        settle(routed, batch_id)
        lines = openai_lines(sdk, batch_id)
        # The file object's size is that of the lines served, extension included.
        batch = sdk.batches.retrieve(batch_id)
        assert batch.output_file_id is not None
        output = sdk.files.content(batch.output_file_id).content
        assert sdk.files.retrieve(batch.output_file_id).bytes == len(output)
    assert [line["custom_id"] for line in lines] == list(PLAN)
    for line in lines:
        served = SERVED_BY[line["custom_id"]]
        assert set(line) == OPENAI_KEYS | ({"served_by"} if served else set()), line
        assert line.get("served_by") == served
    assert [line["response"]["status_code"] for line in lines[:3]] == [200, 200, 400]
    assert lines[3]["error"]["code"] == "batch_cancelled"


def test_the_anthropic_sdk_reads_lines_that_say_their_path(routed: harness.RunningServer) -> None:
    with routed.anthropic(max_retries=0) as sdk:
        batch_id = anthropic_batch(sdk, MODEL)
        settle(routed, batch_id)
        entries = list(sdk.messages.batches.results(batch_id))
        with routed.client() as http:
            raw = jsonl(http.get(f"/v1/messages/batches/{batch_id}/results").text)
    check_message_lines(raw)
    assert [entry.custom_id for entry in entries] == list(PLAN)
    assert [entry.result.type for entry in entries] == [
        "succeeded",
        "succeeded",
        "errored",
        "canceled",
    ]
    # The SDK keeps the extension field it does not know as an extra.
    assert [(entry.model_extra or {}).get("served_by") for entry in entries] == list(
        SERVED_BY.values()
    )


def test_an_ordinary_models_lines_keep_exactly_their_keys(
    plain: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("text r2", *["400"] * 3)  # an errored line in each dialect
    native_id = plain.submit(PLAIN, [f"text r{i}" for i in range(len(PLAN))])
    with plain.openai(max_retries=0) as openai_sdk, plain.anthropic(max_retries=0) as claude:
        openai_id = openai_batch(openai_sdk, PLAIN)
        anthropic_id = anthropic_batch(claude, PLAIN)
        for batch_id in (native_id, openai_id):
            plain.wait_ended(batch_id)
        harness.wait_until(
            lambda: claude.messages.batches.retrieve(anthropic_id).processing_status == "ended",
            30,
            "the Anthropic batch to end",
        )
        openai_lines_ = openai_lines(openai_sdk, openai_id)
        with plain.client() as http:
            native = http.get(f"/v1/batches/{native_id}/results").text
            claude_raw = http.get(f"/v1/messages/batches/{anthropic_id}/results").text
    for text in (native, claude_raw):
        lines = jsonl(text)
        assert len(lines) == len(PLAN) and all(set(line) == MESSAGE_KEYS for line in lines)
        assert "served_by" not in text
    assert len(openai_lines_) == len(PLAN)
    assert all(set(line) == OPENAI_KEYS for line in openai_lines_), openai_lines_
