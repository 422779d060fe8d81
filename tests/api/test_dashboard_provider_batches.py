"""The dashboard for a model served through a provider's batch API: a
batch's page lists the upstream jobs serving it, and the models page shows
admins what each path served, billed and cost, and the jobs' turnaround.
Jobs and outcomes are seeded through the store's port, as the driver
writes them (no worker runs)."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgate.api.ui import format
from batchgate.domain import batch as bm
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.states import RequestState
from tests import harness
from tests.api.test_dashboard import browser, log_in
from tests.contract import builders
from tests.fakes.upstream import FakeUpstream

MODEL = "pb-mini"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    models = {
        MODEL: harness.openai_batch_model(
            MODEL, upstream.openai_base_url, price={"input": 2.0, "output": 6.0}
        )
    }
    with harness.serve(harness.make_settings(tmp_path, models), with_worker=False) as running:
        yield running


def page_text(server: harness.RunningServer, path: str, api_key: str) -> str:
    with browser(server) as client:
        log_in(client, api_key)
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def job_row(page: str, job_id: str) -> str:
    row = page[page.index(f'data-job="{job_id}"') :]
    return row[: row.index("</tr>")]


def test_a_batch_page_lists_the_upstream_jobs_serving_it(server: harness.RunningServer) -> None:
    batch_id = server.submit(MODEL, ["one", "two", "three"])
    now = time.time()
    ended = builders.seed_job(
        server.store,
        MODEL,
        1,
        submitted_at=now - 600,
        ended_at=now - 60,
        upstream_batch_id="batch_upstream_a",
    )
    running = builders.seed_job(
        server.store, MODEL, 2, submitted_at=now - 30, upstream_batch_id="batch_upstream_b"
    )
    page = page_text(server, f"/ui/batches/{batch_id}", server.api_key)
    assert "Upstream jobs" in page
    first, second = job_row(page, ended.id), job_row(page, running.id)
    assert page.index(first) < page.index(second)  # oldest first
    assert "completed" in first and "reading results" in first
    assert "batch_upstream_a" in first
    assert re.search(r'<td class="num">1</td>', first)
    assert "submitted" in second and "batch_upstream_b" in second
    assert re.search(r'<td class="num">2</td>', second)
    assert format.UNKNOWN in second.split("</td>")[-2]  # not ended yet


def test_a_tenant_sees_its_jobs_but_not_the_operators_upstream_ids(
    server: harness.RunningServer,
) -> None:
    tenant = server.new_key("tenant")
    batch_id = server.submit(MODEL, ["one"], api_key=tenant)
    job = builders.seed_job(
        server.store, MODEL, 1, submitted_at=time.time(), upstream_batch_id="batch_upstream_x"
    )
    page = page_text(server, f"/ui/batches/{batch_id}", tenant)
    row = job_row(page, job.id)
    assert "submitted" in row
    # A job holds other tenants' rows: its size and the provider's id are not theirs to see.
    assert "batch_upstream_x" not in page
    assert "Upstream batch" not in page
    # One jobs section, its rows as wide as its head: nothing of the
    # "no job yet" poller stands inside the table.
    assert page.count('id="batch-jobs"') == 1
    assert page.count('/jobs"') == 1
    head = page[page.index("<thead>") : page.index("</thead>")]
    assert head.count("</th>") == row.count("</td>") == 4
    # The section htmx refreshes on its own is the same.
    part = page_text(server, f"/ui/batches/{batch_id}/jobs", tenant)
    assert job_row(part, job.id) == row and "batch_upstream_x" not in part


def served_line(page: str) -> str:
    """The batch page's "Served: ..." line, as text."""
    line = page[page.index("data-served") :]
    line = line[line.index(">") + 1 : line.index("</p>")]
    return " ".join(html.unescape(re.sub("<[^>]+>", "", line)).split())


def test_a_batch_page_counts_the_rows_each_path_served(server: harness.RunningServer) -> None:
    tenant = server.new_key("tenant")
    batch_id = server.submit(MODEL, ["a", "b", "c", "d", "e"], api_key=tenant)
    page = page_text(server, f"/ui/batches/{batch_id}", tenant)
    assert "data-served" not in page  # no row served yet: nothing to count
    now = time.time()
    job = builders.seed_job(server.store, MODEL, 5, submitted_at=now)
    by_batch, errored, realtime, late, _waiting = server.store.job_requests(job.id)
    store = server.store
    store.release_job_requests(job.id, [realtime.id, late.id], now, route=uj.Path.REALTIME)
    lane = {c.id: c for c in store.claim(MODEL, 5, "w", now, builders.LEASE, route="realtime")}
    outcomes = [
        bm.Outcome(by_batch.id, 1, job.id, RequestState.SUCCEEDED, route=uj.Path.BATCH),
        bm.Outcome(errored.id, 1, job.id, RequestState.ERRORED, route=uj.Path.BATCH),
        bm.Outcome(realtime.id, 1, "w", RequestState.SUCCEEDED, route=uj.Path.REALTIME),
    ]
    assert set(lane) == {realtime.id, late.id}
    assert store.record_outcomes(outcomes, now) == [True] * 3
    # The late row is still on its way through the real-time path, the
    # waiting one still at the provider: neither is counted yet.
    expected = "Served: 2 through the provider's batch API, 1 real-time (deadline fallback)"
    page = page_text(server, f"/ui/batches/{batch_id}", tenant)
    assert served_line(page) == expected
    assert page.index("data-served") < page.index(f'data-job="{job.id}"')  # above the jobs
    part = page_text(server, f"/ui/batches/{batch_id}/jobs", tenant)
    assert served_line(part) == expected


def test_rows_served_real_time_without_a_job_are_counted_without_a_jobs_table(
    server: harness.RunningServer,
) -> None:
    """A batch whose rows were inside the fallback window from the start
    never had a job: its page counts them all the same."""
    batch_id = server.submit(MODEL, ["a", "b"])
    (claimed, _) = server.store.claim(MODEL, 2, "w", time.time(), builders.LEASE)
    served = bm.Outcome(claimed.id, 1, "w", RequestState.SUCCEEDED, route=uj.Path.REALTIME)
    assert server.store.record_outcomes([served], time.time()) == [True]
    page = page_text(server, f"/ui/batches/{batch_id}", server.api_key)
    assert served_line(page) == "Served: 1 real-time (deadline fallback)"
    assert "Upstream jobs" in page and '<table class="jobs"' not in page


def test_a_batch_of_no_provider_batch_model_has_no_jobs_section(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    models = {"plain": harness.openai_model("plain", upstream.openai_base_url)}
    settings = harness.make_settings(tmp_path, models)
    with harness.serve(settings, with_worker=False) as plain:
        batch_id = plain.submit("plain", ["one"])
        page = page_text(plain, f"/ui/batches/{batch_id}", plain.api_key)
    assert "batch-jobs" not in page


def end_rows(server: harness.RunningServer, route: uj.Path, costs: list[float]) -> None:
    """Rows of the model that ended succeeded on ``route``, billed ``costs``."""
    store = server.store
    builders.make_batch(store, len(costs), model=MODEL, owner="someone")
    claimed = store.claim(MODEL, len(costs), "w", time.time(), builders.LEASE)
    outcomes = [
        bm.Outcome(c.id, c.attempt, "w", RequestState.SUCCEEDED, cost=cost, route=route.value)
        for c, cost in zip(claimed, costs, strict=True)
    ]
    assert store.record_outcomes(outcomes, time.time()) == [True] * len(costs)


def cells(page: str, path: str) -> list[str]:
    row = page[page.index(f'data-model="{MODEL}" data-path="{path}"') :]
    row = row[: row.index("</tr>")]
    found = re.findall(r'<td class="num[^"]*"[^>]*>(.*?)</td>', row, re.S)
    return [html.unescape(re.sub("<[^>]+>", " ", cell)).split()[0] for cell in found]


def test_the_models_page_shows_each_paths_bill_and_cost_and_the_job_turnaround(
    server: harness.RunningServer,
) -> None:
    end_rows(server, uj.Path.BATCH, [0.25, 0.5])
    end_rows(server, uj.Path.REALTIME, [0.125])
    builders.make_batch(server.store, 1, model=MODEL)
    now = time.time()
    builders.seed_job(server.store, MODEL, 1, submitted_at=now - 750, ended_at=now - 30)
    page = page_text(server, "/ui/models", server.api_key)
    assert "Provider batch APIs" in page
    # requests, tenants billed, operator cost, margin
    assert cells(page, "batch")[:4] == ["2", "$0.75", "$0.75", "$0"]
    assert cells(page, "realtime")[:4] == ["1", "$0.125", "$0.25", "-$0.125"]
    assert cells(page, "total") == ["3", "$0.875", "$1.00", "-$0.125"]
    assert cells(page, "batch")[4] == "12m"  # 12m 00s over 1 job
    assert "over 1 job" in page


def test_only_an_admin_sees_what_the_operator_pays(server: harness.RunningServer) -> None:
    end_rows(server, uj.Path.REALTIME, [0.125])
    page = page_text(server, "/ui/models", server.new_key("tenant"))
    assert "Provider batch APIs" not in page and "Operator cost" not in page
