"""The /ui dashboard driven in a real headless Chromium (Debian's ``chromium``
package, installed by .ci/run; Playwright drives it, no browser download)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from batchgate.domain import batch as bm
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from tests import harness
from tests.contract import builders
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODEL = "fake-chat"
# One call at a time, on the same upstream: a request that hangs there holds
# the only call slot, so the next one the worker claims waits, claimed but
# not generating, for as long as the test needs to look at it.
HELD_MODEL = "held-chat"
HANG = {"kind": "hang", "hang_seconds": 60}


@pytest.fixture
def chromium() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    # Each upstream call takes 150 ms and the model takes two at a time, so a
    # 40-request batch runs for about three seconds: long enough to watch.
    with FakeUpstream(latency_ms=150) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {
        MODEL: harness.openai_model(
            MODEL, upstream.openai_base_url, max_concurrency=2, price={"input": 2, "output": 6}
        ),
        HELD_MODEL: harness.openai_model(HELD_MODEL, upstream.openai_base_url, max_concurrency=1),
    }
    settings = harness.make_settings(tmp_path, models)
    settings.ui.refresh_seconds = 0.3
    # A cancelled batch's hanging call is let go at the worker's next
    # heartbeat (10 s by default, as long as the page's waits): beat each
    # second so a freed slot is taken within them.
    settings.worker.heartbeat_seconds = 1.0
    with harness.serve_socket(settings) as running:
        yield running


def row_of(page: Page, batch_id: str, selector: str) -> Locator:
    return page.locator(f'tr[data-batch-id="{batch_id}"] {selector}')


def done_count(page: Page, batch_id: str) -> int:
    text = page.locator(f'tr[data-batch-id="{batch_id}"] .done-count').inner_text()
    return int(text.replace(",", ""))


def test_log_in_watch_a_batch_progress_open_it_and_cancel_it(
    chromium: Browser, server: harness.RunningServer, tmp_path: Path
) -> None:
    alice, bob = server.new_key("alice"), server.new_key("bob")  # ordinary keys
    theirs = server.submit(MODEL, [f"question {i}" for i in range(3)], api_key=bob)
    mine = server.submit(MODEL, [f"question {i}" for i in range(40)], api_key=alice)

    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server.url}/ui/batches")
    expect(page).to_have_url(f"{server.url}/ui/login")
    page.fill("#api_key", alice)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/ui/batches")

    # The progress moves in place: htmx swaps the table, the page never reloads.
    page.evaluate("window.stillTheSamePage = true")
    first = done_count(page, mine)
    deadline = time.monotonic() + 20
    while done_count(page, mine) <= first:
        assert time.monotonic() < deadline, f"progress stuck at {first}"
        page.wait_for_timeout(100)
    assert page.evaluate("window.stillTheSamePage") is True
    assert 0 < done_count(page, mine) < 40, "the batch should still be running"
    assert theirs not in page.content()
    page.screenshot(path=str(tmp_path / "batches.png"), full_page=True)

    page.click(f'a[href="/ui/batches/{mine}"]')
    expect(page.locator("h1")).to_have_text(mine)
    expect(page.locator("#batch-summary .status")).to_have_text("in progress")
    page.click("text=Cancel batch")
    expect(page.locator("#batch-summary .status")).to_have_text("cancelled", timeout=15_000)
    expect(page.locator("text=Download results (JSONL)")).to_be_visible()
    canceled = page.locator("table.errors .state-canceled")
    expect(canceled).to_have_count(1)
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)

    page.goto(f"{server.url}/ui/batches")
    expect(row_of(page, mine, ".status")).to_have_text("cancelled")
    # Its canceled requests are not errors: no red count, a muted note.
    expect(row_of(page, mine, ".errored-count .err-text")).to_have_count(0)
    expect(row_of(page, mine, ".not-run")).to_contain_text("canceled")
    assert theirs not in page.content()
    assert page.goto(f"{server.url}/ui/batches/{theirs}").status == 404  # type: ignore[union-attr]

    page.click("text=Models")
    expect(page.locator(f'tr[data-model="{MODEL}"]')).to_be_visible()
    page.screenshot(path=str(tmp_path / "models.png"), full_page=True)

    # A page left open after its session is gone goes to the login page at
    # its next refresh instead of showing the login form inside its table.
    page.context.clear_cookies()
    expect(page).to_have_url(f"{server.url}/ui/login", timeout=10_000)
    print(f"screenshots in {tmp_path}")


def log_in(page: Page, url: str, api_key: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("#api_key", api_key)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/ui/batches")


def test_each_batch_shows_the_state_it_is_in(
    chromium: Browser, server: harness.RunningServer, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.script_for("boom", "400")  # not retryable: the request errors at once
    upstream.script_for("hold", HANG)
    # Hangs too once it gets the slot, so the waiting batch is still
    # generating when its page is opened (an answer at once ended it first).
    upstream.script_for("wait 0", HANG)
    errored = server.submit(MODEL, ["boom"])
    done = server.submit(MODEL, ["fine"])
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, server.url, server.api_key)

    # The held model's only call slot is taken by "hold", which hangs; the
    # worker then claims the next batch's first request, which must wait.
    holding = server.submit(HELD_MODEL, ["hold"])
    expect(row_of(page, holding, ".phase")).to_have_text("generating", timeout=10_000)
    waiting = server.submit(HELD_MODEL, ["wait 0", "wait 1", "wait 2"])
    expect(row_of(page, waiting, ".phase")).to_have_text("claimed", timeout=10_000)
    expect(row_of(page, waiting, ".status")).to_have_text("in progress")
    queued = server.submit(HELD_MODEL, ["later"])  # the lane's claim buffer is full
    expect(row_of(page, queued, ".phase")).to_have_text("queued")

    expect(row_of(page, errored, ".status")).to_have_text("completed · 1 errored")
    expect(row_of(page, errored, ".status")).to_have_class("status status-completed-errors")
    expect(row_of(page, errored, ".errored-count .err-text")).to_have_text("1")
    expect(row_of(page, done, ".status")).to_have_text("completed")
    page.screenshot(path=str(tmp_path / "states.png"), full_page=True)

    with server.client() as client:
        client.post(f"/v1/batches/{holding}/cancel").raise_for_status()
    expect(row_of(page, holding, ".status")).to_have_text("cancelled", timeout=15_000)
    expect(row_of(page, holding, ".status")).to_have_class("status status-cancelled")
    expect(row_of(page, holding, ".errored-count .err-text")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "cancelled.png"), full_page=True)

    page.goto(f"{server.url}/ui/batches/{waiting}")
    expect(page.locator("#batch-summary .phase")).to_have_text("generating", timeout=10_000)
    page.goto(f"{server.url}/ui/batches/{errored}")
    expect(page.locator("#batch-summary .status")).to_have_text("completed · 1 errored")
    with server.client() as client:  # the held model's last batches, so the worker drains fast
        for batch_id in (waiting, queued):
            client.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
    print(f"screenshots in {tmp_path}")


PROVIDER_BATCH = "pb-mini"


@pytest.fixture
def provider_server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    """A model served through a provider's batch API, on SQLite, no worker:
    the test moves its jobs through the store as the driver would."""
    models = {
        PROVIDER_BATCH: harness.openai_batch_model(
            PROVIDER_BATCH, upstream.openai_base_url, price={"input": 2.0, "output": 6.0}
        )
    }
    settings = harness.make_settings(tmp_path, models)
    settings.ui.refresh_seconds = 0.3
    with harness.serve_socket(settings, with_worker=False) as running:
        yield running


def test_a_batch_page_shows_its_upstream_jobs_as_they_come_and_end(
    chromium: Browser, provider_server: harness.RunningServer, tmp_path: Path
) -> None:
    server, store = provider_server, provider_server.store
    batch_id = server.submit(PROVIDER_BATCH, ["one", "two", "three"])
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server.url, server.api_key)
    page.goto(f"{server.url}/ui/batches/{batch_id}")
    expect(page.locator("#batch-jobs table")).to_have_count(0)  # nothing sent upstream yet

    # A job takes two of its rows; the open page finds it without a reload.
    page.evaluate("window.stillTheSamePage = true")
    now = time.time()
    job = builders.seed_job(store, PROVIDER_BATCH, 2, submitted_at=now, upstream_batch_id="b_1")
    row = page.locator(f'#batch-jobs tr[data-job="{job.id}"]')
    expect(row.locator(".state")).to_have_text("submitted", timeout=10_000)
    expect(row).to_contain_text("b_1")
    assert page.evaluate("window.stillTheSamePage") is True

    ended = uj.JobUpdate(state=uj.JobState.ENDED, end_status=uj.EndStatus.COMPLETED, ended_at=now)
    assert store.update_job(job.id, "seed", ended, time.time(), builders.LEASE) is not None
    expect(row.locator(".state")).to_have_text("completed", timeout=10_000)
    expect(row.locator(".phase")).to_have_text("reading results")
    page.screenshot(path=str(tmp_path / "batch_jobs.png"), full_page=True)

    # What the two paths served, on the models page (admins only).
    for held in store.job_requests(job.id):
        route = uj.Path.BATCH if held.id % 2 else uj.Path.REALTIME
        outcome = bm.Outcome(
            held.id, held.attempt, job.id, RequestState.SUCCEEDED, cost=0.25, route=route.value
        )
        assert store.record_outcomes([outcome], time.time()) == [True]
    page.goto(f"{server.url}/ui/models")
    expect(page.locator("#provider-batches tr[data-path=total] td.num").first).to_have_text("2")
    page.screenshot(path=str(tmp_path / "models_paths.png"), full_page=True)
    print(f"screenshots in {tmp_path}")
