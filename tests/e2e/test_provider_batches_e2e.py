"""Provider batch APIs end to end (issue 19), each test on real processes.

1. A second ``batchgate serve`` (its own data dir, the fake upstream behind
   it) is the upstream of both an ``openai_batch`` model (its Files + Batch
   API) and an ``anthropic_batch`` model (its Message Batches API). Three
   tenants of the routing ``batchgate serve`` (worker in process) submit
   batches in all three dialects with the same custom_ids. The upstream must
   see ceil(N / limit) batches per model, never one per tenant batch; every
   result must come back to its tenant and custom_id, billed at the batch
   price; and no tenant custom_id may reach the upstream.
2. Deadline fallback: the fake upstream holds every job past
   ``sync_fallback_before``; the rows finish through the model's real-time
   upstream inside the tenant's window, the upstream batches are cancelled,
   and each row records the path that served it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx
import openai
import pytest
from prometheus_client import parser

from batchgate import config
from tests import harness
from tests.api.test_dashboard import log_in
from tests.e2e import processes
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.slow
T = TypeVar("T")

GPT = "gpt-batch"  # openai_batch
CLAUDE = "claude-batch"  # anthropic_batch
UPSTREAM_MODEL = "up-chat"  # the upstream batchgate's model (the fake behind it)
LIMIT = 7  # max_requests_per_job of both models
PRICE = {"input": 2.0, "output": 6.0}  # list price, USD per million tokens
DIALECTS = ("native", "openai", "anthropic")
TENANTS = 3
WORKER = {"poll_seconds": 0.05, "sweep_seconds": 0.2, "heartbeat_seconds": 0.5}
# Long enough that every tenant batch is queued before a part-full job is
# sent (the nine creates take well under a second), so the only jobs are the
# full ones plus one remainder per model: ceil(N / LIMIT).
FLUSH_AFTER_SECONDS = 8
WAIT = 180.0  # generous: a loaded 2-core machine


@dataclasses.dataclass(frozen=True)
class Ask:
    """One tenant request: its text names tenant, dialect, model and index,
    so the fake's reply ("echo: <text>") says whose answer it is."""

    tenant: int
    dialect: str
    custom_id: str
    model: str
    text: str

    @property
    def reply(self) -> str:
        return f"echo: {self.text}"

    @property
    def input_tokens(self) -> int:  # the fake counts words
        return len(self.text.split())

    @property
    def output_tokens(self) -> int:
        return len(self.reply.split())

    @property
    def cost(self) -> float:
        """The tenant's bill for it: the batch price, half the list price."""
        usd = self.input_tokens * PRICE["input"] + self.output_tokens * PRICE["output"]
        return usd / 1e6 * config.BATCH_DISCOUNT


def plan() -> dict[tuple[int, str], list[Ask]]:
    """Nine tenant batches of 4..10 requests, each mixing both models; the
    custom_ids (item-00, item-01, ...) repeat across tenants and dialects on
    purpose, and appear in no request text."""
    batches: dict[tuple[int, str], list[Ask]] = {}
    for d, dialect in enumerate(DIALECTS):
        for tenant in range(TENANTS):
            asks = []
            for i in range(4 + tenant + 2 * d):
                model = GPT if i % 2 == 0 else CLAUDE
                text = f"t{tenant} {dialect} {model} question {i}"
                asks.append(Ask(tenant, dialect, f"item-{i:02d}", model, text))
            batches[(tenant, dialect)] = asks
    return batches


# -- processes -------------------------------------------------------------------


@contextlib.contextmanager
def upstream_batchgate(tmp_path: Path, fake: FakeUpstream) -> Iterator[str]:
    """A batchgate serving ``UPSTREAM_MODEL`` from the fake upstream; its URL."""
    data = tmp_path / "upstream"
    data.mkdir()
    cfg = processes.write_config(
        data / "batchgate.toml",
        {
            UPSTREAM_MODEL: {
                "backend": "openai_compatible",
                "base_url": fake.openai_base_url,
                "max_concurrency": 8,
            }
        },
        worker=WORKER,
    )
    port = processes.free_port()
    with processes.serve(cfg, data, port):
        yield f"http://127.0.0.1:{port}"


def job_options(**extra: Any) -> dict[str, Any]:
    return {
        "max_requests_per_job": LIMIT,
        "poll_seconds": 0.3,
        "poll_max_seconds": 1,
        "price": PRICE,
        **extra,
    }


@contextlib.contextmanager
def routing_batchgate(
    tmp_path: Path,
    models: dict[str, dict[str, Any]],
    tables: dict[str, dict[str, Any]] | None = None,
) -> Iterator[tuple[str, Path]]:
    """The routing batchgate (its worker in process); its URL and database."""
    data = tmp_path / "routing"
    data.mkdir()
    cfg = processes.write_config(data / "batchgate.toml", models, worker=WORKER, tables=tables)
    port = processes.free_port()
    with processes.serve(cfg, data, port):
        yield f"http://127.0.0.1:{port}", data / "batchgate.db"


def new_tenant(url: str, name: str) -> str:
    """An ordinary API key, made by the admin key over /v1/keys."""
    response = httpx.post(
        f"{url}/v1/keys",
        json={"name": name},
        headers={"authorization": f"Bearer {processes.API_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["value"]
    return secret


def rows(database: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    """A read of a running batchgate's SQLite database (WAL: readers never
    block its writers)."""
    connection = sqlite3.connect(database, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


# -- the three dialects, as a tenant uses them ----------------------------------------


def native_body(asks: list[Ask]) -> dict[str, Any]:
    return {
        "requests": [
            {
                "custom_id": ask.custom_id,
                "params": {
                    "model": ask.model,
                    "max_tokens": 32,
                    "messages": [{"role": "user", "content": ask.text}],
                },
            }
            for ask in asks
        ]
    }


class Tenant:
    """One tenant's three clients of the routing batchgate: httpx (native),
    the official openai SDK and the official anthropic SDK."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=60, headers={"authorization": f"Bearer {key}"}
        )
        self.openai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        self.anthropic = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)

    def close(self) -> None:
        self.http.close()
        self.openai.close()
        self.anthropic.close()

    def prepare(self, dialect: str, asks: list[Ask]) -> Callable[[], str]:
        """What to send, made ready (the OpenAI file uploaded: that queues
        nothing); calling the result creates the batch and returns its id."""
        if dialect == "native":
            body = native_body(asks)
            return lambda: self._native(body)
        if dialect == "openai":
            lines = [
                {
                    "custom_id": ask.custom_id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": ask.model,
                        "max_tokens": 32,
                        "messages": [{"role": "user", "content": ask.text}],
                    },
                }
                for ask in asks
            ]
            content = "\n".join(json.dumps(line) for line in lines).encode()
            file_id = self.openai.files.create(file=("in.jsonl", content), purpose="batch").id
            return lambda: (
                self.openai.batches.create(
                    input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
                ).id
            )
        requests: Any = native_body(asks)["requests"]
        return lambda: self.anthropic.messages.batches.create(requests=requests).id

    def _native(self, body: dict[str, Any]) -> str:
        response = self.http.post("/v1/batches", json=body)
        assert response.status_code == 200, response.text
        batch_id: str = response.json()["id"]
        return batch_id

    def ended(self, dialect: str, batch_id: str) -> bool:
        if dialect == "anthropic":
            return self.anthropic.messages.batches.retrieve(batch_id).processing_status == "ended"
        return self.batch_object(batch_id)["status"] in processes.ENDED

    def batch_object(self, batch_id: str) -> dict[str, Any]:
        """A native or OpenAI batch object (usage and cost included)."""
        response = self.http.get(f"/v1/batches/{batch_id}", headers={"accept": "application/json"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def results(
        self, dialect: str, batch_id: str, served_by: str
    ) -> dict[str, tuple[str, int, int]]:
        """Each custom_id's (reply text, input tokens, output tokens), as the
        dialect shows them; every line says the path ``served_by`` served it
        (the one extension field on the dialect's own keys)."""
        if dialect == "native":
            text = self.http.get(f"/v1/batches/{batch_id}").text
            found = {}
            for line in map(json.loads, text.splitlines()):
                assert line["result"]["type"] == "succeeded", line
                assert line.keys() == {"custom_id", "result", "served_by"}, line
                assert line["served_by"] == served_by, line
                message = line["result"]["message"]
                usage = message["usage"]
                found[line["custom_id"]] = (
                    message["content"][0]["text"],
                    usage["input_tokens"],
                    usage["output_tokens"],
                )
            return found
        if dialect == "openai":
            batch = self.openai.batches.retrieve(batch_id)
            assert batch.status == "completed" and batch.error_file_id is None, batch
            assert batch.output_file_id is not None
            content = self.openai.files.content(batch.output_file_id).text
            found = {}
            for line in map(json.loads, content.splitlines()):
                assert line["error"] is None and line["response"]["status_code"] == 200, line
                assert line.keys() == {"id", "custom_id", "response", "error", "served_by"}, line
                assert line["served_by"] == served_by, line
                body = line["response"]["body"]
                found[line["custom_id"]] = (
                    body["choices"][0]["message"]["content"],
                    body["usage"]["prompt_tokens"],
                    body["usage"]["completion_tokens"],
                )
            return found
        found = {}
        for entry in self.anthropic.messages.batches.results(batch_id):
            assert entry.result.type == "succeeded", entry
            # The SDK keeps the field it does not know as an extra.
            assert entry.model_extra == {"served_by": served_by}, entry
            message = entry.result.message
            block = message.content[0]
            assert block.type == "text", message
            found[entry.custom_id] = (
                block.text,
                message.usage.input_tokens,
                message.usage.output_tokens,
            )
        return found


# -- 1. coalesced across tenants, through a batchgate upstream ---------------------------


def test_three_tenants_in_three_dialects_share_provider_batches_of_a_batchgate_upstream(
    tmp_path: Path,
) -> None:
    batches = plan()
    asks = [ask for group in batches.values() for ask in group]
    counts = {model: sum(ask.model == model for ask in asks) for model in (GPT, CLAUDE)}
    # Remainders on purpose: a part-full last job each (33 = 4 x 7 + 5, 30 = 4 x 7 + 2).
    assert all(n % LIMIT for n in counts.values()), counts
    with (
        FakeUpstream() as fake,
        upstream_batchgate(tmp_path, fake) as upstream,
        routing_batchgate(
            tmp_path,
            {
                GPT: {
                    "backend": "openai_batch",
                    "base_url": f"{upstream}/v1",
                    "api_key": processes.API_KEY,
                    "upstream_model": UPSTREAM_MODEL,
                    # Kept at the upstream for check_nothing_of_the_tenants_upstream
                    # to read (deleting them: test_provider_batch_clients.py).
                    "delete_files": False,
                    **job_options(flush_after_seconds=FLUSH_AFTER_SECONDS),
                },
                CLAUDE: {
                    "backend": "anthropic_batch",
                    "base_url": upstream,
                    "api_key": processes.API_KEY,
                    "upstream_model": UPSTREAM_MODEL,
                    **job_options(flush_after_seconds=FLUSH_AFTER_SECONDS),
                },
            },
        ) as (routing, database),
    ):
        tenants = [Tenant(routing, new_tenant(routing, f"tenant-{t}")) for t in range(TENANTS)]
        try:
            sends = {key: tenants[key[0]].prepare(key[1], group) for key, group in batches.items()}
            ids = {key: send() for key, send in sends.items()}
            for (tenant, dialect), batch_id in ids.items():
                harness.wait_until(
                    lambda t=tenant, d=dialect, b=batch_id: tenants[t].ended(d, b),
                    WAIT,
                    f"tenant {tenant}'s {dialect} batch {batch_id} to end",
                    every=0.2,
                )
            check_results(tenants, batches, ids, database)
        finally:
            for tenant_clients in tenants:
                tenant_clients.close()
        check_upstream_batches(upstream, counts)
        check_jobs(database, counts)
        check_nothing_of_the_tenants_upstream(
            upstream, tmp_path / "upstream" / "batchgate.db", database
        )


def check_results(
    tenants: list[Tenant],
    batches: dict[tuple[int, str], list[Ask]],
    ids: dict[tuple[int, str], str],
    database: Path,
) -> None:
    """Every tenant reads its own answer under each custom_id, with the
    upstream's usage, billed at the batch price; every row took the batch path."""
    for key, batch_id in ids.items():
        tenant, dialect = key
        expected = {
            ask.custom_id: (ask.reply, ask.input_tokens, ask.output_tokens) for ask in batches[key]
        }
        assert tenants[tenant].results(dialect, batch_id, "batch") == expected, key
        stored = {
            row["custom_id"]: row
            for row in rows(
                database,
                "SELECT custom_id, state, cost, route, upstream_job_id FROM requests "
                "WHERE batch_id = ?",
                batch_id,
            )
        }
        assert set(stored) == set(expected)
        for ask in batches[key]:
            row = stored[ask.custom_id]
            assert row["state"] == "succeeded"
            assert row["route"] == "batch", dict(row)
            assert row["upstream_job_id"] is not None
            assert row["cost"] == pytest.approx(ask.cost, rel=1e-9), ask
        if dialect != "anthropic":  # the Message Batches object has no usage
            batch = tenants[tenant].batch_object(batch_id)
            assert batch["usage"]["input_tokens"] == sum(e[1] for e in expected.values())
            assert batch["usage"]["output_tokens"] == sum(e[2] for e in expected.values())
            total = sum(ask.cost for ask in batches[key])
            assert batch["cost"] == pytest.approx(total, rel=1e-6), batch


def check_upstream_batches(upstream: str, counts: dict[str, int]) -> None:
    """Counted with the upstream's own list APIs: ceil(N / LIMIT) batches per
    model, none over the limit, every request sent once, all completed."""
    with (
        openai.OpenAI(base_url=f"{upstream}/v1", api_key=processes.API_KEY) as sdk,
        anthropic.Anthropic(base_url=upstream, api_key=processes.API_KEY) as claude,
    ):
        seen_openai = list(sdk.batches.list(limit=100))
        seen_anthropic = list(claude.messages.batches.list(limit=100))
    assert len(seen_openai) == math.ceil(counts[GPT] / LIMIT), seen_openai
    assert all(b.status == "completed" for b in seen_openai), seen_openai
    sizes = [b.request_counts.total for b in seen_openai if b.request_counts is not None]
    assert len(sizes) == len(seen_openai) and max(sizes) <= LIMIT, sizes
    assert sum(sizes) == counts[GPT]
    assert len(seen_anthropic) == math.ceil(counts[CLAUDE] / LIMIT), seen_anthropic
    assert all(b.processing_status == "ended" for b in seen_anthropic), seen_anthropic
    sizes = [b.request_counts.succeeded for b in seen_anthropic]
    assert max(sizes) <= LIMIT and sum(sizes) == counts[CLAUDE], seen_anthropic


def check_jobs(database: Path, counts: dict[str, int]) -> None:
    """The routing side's job records agree, and jobs were shared: one job
    holds rows of several tenants."""
    jobs = rows(database, "SELECT * FROM upstream_jobs")
    for model, n in counts.items():
        mine = [job for job in jobs if job["model"] == model]
        assert len(mine) == math.ceil(n / LIMIT), [dict(job) for job in mine]
        assert all(job["end_status"] == "completed" for job in mine)
        assert all(job["downloaded_at"] is not None for job in mine)
        assert sum(job["request_count"] for job in mine) == n
    owners = rows(
        database,
        "SELECT r.upstream_job_id AS job, COUNT(DISTINCT b.owner) AS tenants "
        "FROM requests r JOIN batches b ON b.id = r.batch_id GROUP BY r.upstream_job_id",
    )
    assert max(row["tenants"] for row in owners) > 1, [dict(row) for row in owners]


def check_nothing_of_the_tenants_upstream(upstream: str, upstream_db: Path, database: Path) -> None:
    """The upstream's stored inputs carry our request ids as custom_ids,
    each exactly once, and no tenant custom_id anywhere: not in its requests
    table, not in the input files our jobs uploaded."""
    ours = {str(row["id"]) for row in rows(database, "SELECT id FROM requests")}
    stored = rows(upstream_db, "SELECT custom_id, params FROM requests")
    custom_ids = [row["custom_id"] for row in stored]
    assert sorted(custom_ids) == sorted(ours)  # each request sent once, as its id
    assert not any("item-" in row["params"] for row in stored)
    headers = {"authorization": f"Bearer {processes.API_KEY}"}
    with httpx.Client(base_url=upstream, headers=headers, timeout=60) as http:
        files = http.get("/v1/files", params={"limit": 10000}).json()["data"]
        inputs = [f for f in files if f["filename"].startswith("batchgate-")]
        assert inputs, files
        lines = []
        for record in inputs:
            content = http.get(f"/v1/files/{record['id']}/content").text
            assert "item-" not in content
            lines += [json.loads(line)["custom_id"] for line in content.splitlines()]
    gpt_ids = {
        str(row["id"]) for row in rows(database, "SELECT id FROM requests WHERE model = ?", GPT)
    }
    assert sorted(lines) == sorted(gpt_ids)


# -- 2. deadline fallback ---------------------------------------------------------------

HELD_GPT = "gpt-held"  # openai_batch on the fake upstream
HELD_CLAUDE = "claude-held"  # anthropic_batch on the fake upstream
WINDOW_SECONDS = 60
# Rows fall back 20 s into their 60 s window: time enough for a job to reach
# the upstream first (it is sent 1 s in), and for the fallback to finish.
FALLBACK_BEFORE_SECONDS = 40


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(
        f"{url}/metrics", headers={"authorization": f"Bearer {processes.API_KEY}"}, timeout=60
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_rows_of_a_held_upstream_job_fall_back_to_the_realtime_upstream_in_time(
    tmp_path: Path,
) -> None:
    fallback = {
        "api_key": "unused-by-the-fake",
        "flush_after_seconds": 1,
        "sync_fallback_before": f"{FALLBACK_BEFORE_SECONDS}s",
    }
    with FakeUpstream() as fake:
        fake.configure(hold=True)  # every batch stays in_progress until released
        realtime = {"backend": "openai_compatible", "base_url": fake.openai_base_url}
        models = {
            HELD_GPT: {
                "backend": "openai_batch",
                "base_url": fake.openai_base_url,
                **job_options(**fallback, realtime=realtime),
            },
            HELD_CLAUDE: {
                "backend": "anthropic_batch",
                "base_url": fake.base_url,
                **job_options(**fallback, realtime=realtime),
            },
        }
        tables = {"batches": {"completion_window": f"{WINDOW_SECONDS}s"}}
        with routing_batchgate(tmp_path, models, tables) as (routing, database):
            key = new_tenant(routing, "tenant")
            asks = [
                Ask(
                    0,
                    "native",
                    f"item-{i:02d}",
                    HELD_GPT if i % 2 == 0 else HELD_CLAUDE,
                    f"late question {i}",
                )
                for i in range(10)
            ]
            tenant = Tenant(routing, key)
            try:
                batch_id = tenant.prepare("native", asks)()
                # Both jobs reach the upstream, which holds them.
                held = harness.wait_until(
                    lambda: upstream_batches(fake, 2),
                    WAIT,
                    "a held upstream batch per model",
                    every=0.1,
                )
                assert all(b["held"] and b["done"] == 0 for b in held), held
                assert {b["api"] for b in held} == {"openai", "anthropic"}, held
                harness.wait_until(
                    lambda: tenant.ended("native", batch_id), WAIT, "the batch to end", every=0.2
                )
                batch = tenant.batch_object(batch_id)
                assert batch["status"] == "completed", batch
                expected = {a.custom_id: (a.reply, a.input_tokens, a.output_tokens) for a in asks}
                assert tenant.results("native", batch_id, "realtime") == expected
            finally:
                tenant.close()
            check_fallback(fake, database, batch_id, batch, asks)
            check_path_costs(routing, asks)
            check_models_page(routing, asks)


def upstream_batches(fake: FakeUpstream, n: int) -> list[dict[str, Any]] | None:
    """The fake's batches once there are ``n``."""
    found: list[dict[str, Any]] = fake.batches()["batches"]
    return found if len(found) == n else None


def all_of(items: list[T], test: Callable[[T], bool]) -> list[T] | None:
    """``items`` if there are some and all pass ``test`` (a wait's probe)."""
    return items if items and all(test(item) for item in items) else None


def check_fallback(
    fake: FakeUpstream, database: Path, batch_id: str, batch: dict[str, Any], asks: list[Ask]
) -> None:
    """Each row was served once, by the real-time upstream, inside the
    window, billed the batch price; the upstream batches were cancelled with
    nothing answered (nothing billed there)."""
    stored = {
        row["custom_id"]: row
        for row in rows(
            database,
            "SELECT custom_id, route, cost, finished_at FROM requests WHERE batch_id = ?",
            batch_id,
        )
    }
    for ask in asks:
        row = stored[ask.custom_id]
        assert row["route"] == "realtime", dict(row)
        assert row["finished_at"] < batch["expires_at"]
        assert row["cost"] == pytest.approx(ask.cost, rel=1e-9)
        calls = fake.calls(ask.text)
        assert [call["path"] for call in calls] == ["/v1/chat/completions"], calls
        # Not at once: when the window left fell under sync_fallback_before
        # (created_at is whole seconds, hence the second's slack).
        fallback_point = batch["created_at"] + WINDOW_SECONDS - FALLBACK_BEFORE_SECONDS
        assert calls[0]["t"] >= fallback_point - 1, (calls[0]["t"], batch)
    ended = harness.wait_until(
        lambda: all_of(fake.batches()["batches"], lambda b: b["state"] == "cancelled"),
        WAIT,
        "the held upstream batches to be cancelled",
        every=0.1,
    )
    assert {b["api"] for b in ended} == {"openai", "anthropic"}, ended
    assert all(b["succeeded"] == 0 for b in ended), ended
    assert not any(fake.batches()["billed"].values())
    jobs = harness.wait_until(
        lambda: all_of(
            rows(database, "SELECT * FROM upstream_jobs"), lambda j: j["downloaded_at"] is not None
        ),
        WAIT,
        "the routing side to settle its cancelled jobs",
        every=0.2,
    )
    assert sorted(j["model"] for j in jobs) == [HELD_CLAUDE, HELD_GPT]
    assert all(j["end_status"] == "cancelled" and j["cancel_requested_at"] for j in jobs)


def check_path_costs(routing: str, asks: list[Ask]) -> None:
    """/metrics: the operator paid the list price (twice the tenant's batch
    price) on the real-time path, and nothing on the batch path."""
    for model in (HELD_GPT, HELD_CLAUDE):
        billed = sum(ask.cost for ask in asks if ask.model == model)
        series = ("batchgate_upstream_cost_usd_total", (("model", model), ("path", "realtime")))
        found = harness.wait_until(
            lambda s=series: scrape(routing).get(s), WAIT, f"{model}'s real-time cost", every=0.5
        )
        assert found == pytest.approx(2 * billed, rel=1e-6)
        batch_path = ("batchgate_upstream_cost_usd_total", (("model", model), ("path", "batch")))
        assert scrape(routing).get(batch_path, 0.0) == 0.0


def requests_served(page: str, model: str, path: str) -> int:
    """The requests a path served, from the models page's provider-batch row."""
    row = page[page.index(f'data-model="{model}" data-path="{path}"') :]
    row = row[: row.index("</tr>")]
    first = re.search(r'<td class="num[^"]*"[^>]*>\s*([\d,]+)', row)
    assert first, row
    return int(first.group(1).replace(",", ""))


def check_models_page(routing: str, asks: list[Ask]) -> None:
    """The dashboard's models page shows the admin each path's requests:
    every row of each model on the real-time path, none on the batch path."""
    with httpx.Client(base_url=routing, timeout=60) as browser:
        log_in(browser, processes.API_KEY)
        response = browser.get("/ui/models")
    assert response.status_code == 200, response.text
    for model in (HELD_GPT, HELD_CLAUDE):
        served = sum(ask.model == model for ask in asks)
        assert requests_served(response.text, model, "realtime") == served
        assert requests_served(response.text, model, "batch") == 0
