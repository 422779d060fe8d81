"""Operator routes over real HTTP: /health, /ready and an admin-only /metrics."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command as alembic_command
from alembic import script as alembic_script
from prometheus_client import parser

from batchgate import config
from batchgate.store import engine, sql
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"


def _settings(tmp_path: Path, upstream: FakeUpstream, **metrics: object) -> config.Settings:
    settings = harness.make_settings(
        tmp_path,
        {MODEL: harness.openai_model(MODEL, upstream.openai_base_url, price={"input": 2.0})},
        heartbeat_seconds=0.2,
    )
    return settings.model_copy(update={"metrics": config.MetricsSettings(**metrics)})  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[harness.RunningServer]:
    with harness.serve(_settings(tmp_path, upstream)) as running:
        yield running


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(server: harness.RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with server.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


def wait_ready(server: harness.RunningServer) -> dict[str, object]:
    """/ready's body once it answers 200, or its last body after 10 s."""
    with server.client() as client, contextlib.suppress(TimeoutError):
        harness.wait_until(lambda: client.get("/ready").status_code == 200, 10, "/ready")
    with server.client() as client:
        body: dict[str, object] = client.get("/ready").json()
    return body


def test_health_answers_without_a_key(server: harness.RunningServer) -> None:
    with server.client("") as client:
        response = client.get("/health", headers={"authorization": ""})
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_once_the_database_is_current_and_a_worker_reported(
    server: harness.RunningServer,
) -> None:
    body = wait_ready(server)
    assert body["status"] == "ready"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"] == {"ok": True}
    assert checks["migrations"]["ok"] and checks["migrations"]["current"] is not None
    assert checks["workers"]["ok"] and checks["workers"]["alive"] == 1


def test_not_ready_without_any_worker(tmp_path: Path, upstream: FakeUpstream) -> None:
    with (
        harness.serve(_settings(tmp_path, upstream), with_worker=False) as server,
        server.client() as client,
    ):
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["workers"] == {
        "ok": False,
        "alive": 0,
        "within_seconds": 60.0,
        "last_seen_at": None,
    }
    assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]


def test_not_ready_while_the_database_is_at_an_older_migration(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    on_sqlite = _settings(tmp_path, upstream).model_copy(
        update={"database_url": harness.sqlite_url(tmp_path)}
    )
    with harness.serve(on_sqlite, with_worker=False) as server:
        head = engine.head_revision()
        older = alembic_script.ScriptDirectory.from_config(engine._alembic_config())
        previous = older.get_revision(head).down_revision
        assert isinstance(previous, str)
        cfg = engine._alembic_config()
        with server.store.engine.connect().execution_options(write=True) as conn:
            cfg.attributes["connection"] = conn
            alembic_command.downgrade(cfg, previous)
            conn.commit()
        with server.client() as client:
            response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"] == {"ok": False, "current": previous, "head": head}


def test_not_ready_when_the_database_cannot_be_reached(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = sql.SqlJobStore.open(
        f"postgresql://127.0.0.1:{dead_port}/test?connect_timeout=2", migrate=False
    )
    with (
        harness.serve(_settings(tmp_path, upstream), with_worker=False, store=dead) as server,
        server.client("") as client,
    ):
        response = client.get("/ready", headers={"authorization": ""})
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "checks": {"database": {"ok": False, "error": "OperationalError"}},
    }


def test_metrics_need_an_admin_key(server: harness.RunningServer) -> None:
    ordinary = server.new_key("tenant")
    with server.client(ordinary) as tenant:
        forbidden = tenant.get("/metrics")
    with server.client("bg-not-a-key") as stranger:
        unknown = stranger.get("/metrics")
    assert (forbidden.status_code, unknown.status_code) == (403, 401)


def test_metrics_count_a_finished_batch_with_a_retry(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("q1", "503")
    with server.client() as client:
        created = client.post(
            "/v1/batches",
            json={
                "requests": [
                    {
                        "custom_id": f"q{i}",
                        "params": {
                            "model": MODEL,
                            "max_tokens": 8,
                            "messages": [{"role": "user", "content": f"q{i}"}],
                        },
                    }
                    for i in range(3)
                ]
            },
        ).json()
    batch = server.wait_ended(created["id"])
    model = (("model", MODEL),)
    succeeded = ("batchgate_attempts_total", (*model, ("outcome", "succeeded")))
    found = harness.wait_until(  # the worker reports its counters every heartbeat
        lambda: (scraped := scrape(server)).get(succeeded) == 3 and scraped,
        10,
        "three succeeded attempts on /metrics",
        every=0.1,
    )
    assert found.get(("batchgate_attempts_total", (*model, ("outcome", "errored"))), 0) == 0
    assert found[("batchgate_in_flight_requests", model)] == 0
    assert found[("batchgate_queue_depth", (*model, ("state", "ready")))] == 0
    assert found[("batchgate_batches", (("status", "completed"),))] == 1
    assert found[("batchgate_retries_total", (("cause", "http_503"), *model))] == 1
    assert found[("batchgate_upstream_latency_seconds_count", model)] == 4
    assert (
        found[("batchgate_tokens_total", (("direction", "input"), *model))]
        == (batch["usage"]["input_tokens"])
    )
    assert found[("batchgate_cost_usd_total", model)] == pytest.approx(batch["cost"])
    assert found[("batchgate_workers_alive", ())] == 1


def test_metrics_switched_off_are_not_served(tmp_path: Path, upstream: FakeUpstream) -> None:
    with (
        harness.serve(_settings(tmp_path, upstream, enabled=False)) as server,
        server.client() as client,
    ):
        assert client.get("/metrics").status_code == 404
