"""The /ui dashboard driven in a real headless Chromium (Debian's ``chromium``
package, installed by .ci/run; Playwright drives it, no browser download)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import harness
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


@pytest.fixture
def chromium() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.RunningServer]:
    # Each upstream call takes 150 ms and the model takes two at a time, so a
    # 40-request batch runs for about three seconds: long enough to watch.
    with FakeUpstream(latency_ms=150) as upstream:
        models = {
            MODEL: harness.openai_model(
                MODEL, upstream.openai_base_url, max_concurrency=2, price={"input": 2, "output": 6}
            )
        }
        settings = harness.make_settings(tmp_path, models)
        settings.ui.refresh_seconds = 0.3
        with harness.serve_socket(settings) as running:
            yield running


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
    expect(page.locator(f'tr[data-batch-id="{mine}"] .status')).to_have_text("cancelled")
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
