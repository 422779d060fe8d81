"""The webhook outbox contract, on SQLite and PostgreSQL: every way a batch
ends writes its event in the same transaction, deliveries are leased to one
worker at a time, and attempt outcomes are fenced on the lease."""

from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from batchgate.dialects import webhooks as webhooks_dialect
from batchgate.domain import ids
from batchgate.domain import webhooks as wh
from batchgate.domain.states import BatchStatus, Dialect
from batchgate.store import port
from tests.contract.builders import LEASE, make_batch, new_batch, succeed


def endpoint(
    store: port.JobStore,
    owner: str = "key_a",
    events: tuple[wh.EventType, ...] = wh.TERMINAL_EVENTS,
    progress: int | None = None,
) -> wh.Endpoint:
    made = wh.Endpoint(
        id=ids.new_webhook_endpoint_id(),
        owner=owner,
        url="https://hooks.example.com/x",
        event_types=events,
        progress_every_percent=progress,
        description=None,
        created_at=time.time(),
    )
    stored = store.create_webhook_endpoint(made, ids.new_webhook_secret())
    assert stored is not None
    return stored


def test_an_owner_past_its_endpoint_cap_gets_none_and_nothing_stored(
    store: port.JobStore,
) -> None:
    for _ in range(2):
        endpoint(store)
    extra = dataclasses.replace(endpoint(store, owner="key_b"), id=ids.new_webhook_endpoint_id())
    assert store.create_webhook_endpoint(extra, "whsec_x", max_per_owner=1) is None
    third = dataclasses.replace(extra, owner="key_a", id=ids.new_webhook_endpoint_id())
    assert store.create_webhook_endpoint(third, "whsec_x", max_per_owner=2) is None
    assert len(store.list_webhook_endpoints("key_a")) == 2
    assert store.delete_webhook_endpoint(store.list_webhook_endpoints("key_a")[0].id, "key_a", 1.0)
    assert store.create_webhook_endpoint(third, "whsec_x", max_per_owner=2) == third


def events_of(store: port.JobStore, endpoint_id: str) -> list[tuple[str, str]]:
    rows = store.list_webhook_deliveries(endpoint_id, limit=100)[0]
    return sorted((row.event_type.value, row.batch_id) for row in rows)


def finish_all(store: port.JobStore, batch_id: str, n: int) -> None:
    for claimed in store.claim("m", n, "w1", time.time(), LEASE):
        assert claimed.batch_id == batch_id
        succeed(store, claimed)


def test_completing_a_batch_writes_its_event(store: port.JobStore) -> None:
    hook = endpoint(store)
    batch = make_batch(store, 2)
    finish_all(store, batch.id, 2)
    assert events_of(store, hook.id) == []  # not ended until finalized
    assert store.finalize_batches(time.time()) == [batch.id]
    assert events_of(store, hook.id) == [("batch.completed", batch.id)]
    (row,) = store.list_webhook_deliveries(hook.id, limit=10)[0]
    body = orjson.loads(webhooks_dialect.event_payload(row.event))
    assert body == {
        "id": row.event_id,
        "object": "event",
        "created_at": body["created_at"],
        "type": "batch.completed",
        "data": {"id": batch.id},
    }
    assert (row.status, row.attempts) == (wh.DeliveryStatus.PENDING, 0)


def test_cancel_expiry_and_validation_failure_write_their_events(
    store: port.JobStore,
) -> None:
    hook = endpoint(store)
    cancelled = make_batch(store, 1)
    store.cancel_batch(cancelled.id, "key_a", time.time())
    store.finalize_batches(time.time())
    expired = make_batch(store, 1, window=-1)
    assert store.expire_batches(time.time()) == [expired.id]
    now = time.time()
    failing = new_batch(0, dialect=Dialect.OPENAI)
    store.fail_batch(failing, [], now)
    assert events_of(store, hook.id) == sorted(
        [
            ("batch.cancelled", cancelled.id),
            ("batch.expired", expired.id),
            ("batch.failed", failing.id),
        ]
    )
    stored = store.get_batch(failing.id)
    assert stored is not None and stored.status is BatchStatus.FAILED


def test_only_the_owners_subscribed_live_endpoints_get_the_event(
    store: port.JobStore,
) -> None:
    mine = endpoint(store)
    failures_only = endpoint(store, events=(wh.EventType.BATCH_FAILED,))
    theirs = endpoint(store, owner="key_b")
    gone = endpoint(store)
    assert store.delete_webhook_endpoint(gone.id, "key_a", time.time())
    batch = make_batch(store, 1)
    finish_all(store, batch.id, 1)
    store.finalize_batches(time.time())
    assert events_of(store, mine.id) == [("batch.completed", batch.id)]
    assert events_of(store, failures_only.id) == []
    assert events_of(store, theirs.id) == []
    assert events_of(store, gone.id) == []
    assert {e.id for e in store.list_webhook_endpoints("key_a")} == {mine.id, failures_only.id}


def test_a_delivery_is_leased_to_one_worker_and_again_once_the_lease_lapses(
    store: port.JobStore,
) -> None:
    endpoint(store)
    batch = make_batch(store, 1)
    finish_all(store, batch.id, 1)
    store.finalize_batches(time.time())
    now = time.time()
    (first,) = store.claim_webhook_deliveries("w1", 10, now, LEASE)
    assert store.claim_webhook_deliveries("w2", 10, now, LEASE) == []
    assert (first.attempt, first.url) == (1, "https://hooks.example.com/x")
    (again,) = store.claim_webhook_deliveries("w2", 10, now + LEASE + 1, LEASE)
    sent = webhooks_dialect.event_payload
    assert (again.id, again.attempt, sent(again.event)) == (first.id, 2, sent(first.event))
    # The first worker's late answer is fenced out; the second one's lands.
    late = wh.AttemptResult(first.id, "w1", 1, wh.DeliveryStatus.DELIVERED, status_code=200)
    assert not store.record_webhook_attempt(late, now)
    done = wh.AttemptResult(again.id, "w2", 2, wh.DeliveryStatus.DELIVERED, status_code=200)
    assert store.record_webhook_attempt(done, now)
    assert store.claim_webhook_deliveries("w3", 10, now + 10 * LEASE, LEASE) == []


def test_a_failed_attempt_waits_for_its_next_attempt_time(store: port.JobStore) -> None:
    hook = endpoint(store)
    batch = make_batch(store, 1)
    finish_all(store, batch.id, 1)
    store.finalize_batches(time.time())
    now = time.time()
    (claimed,) = store.claim_webhook_deliveries("w1", 10, now, LEASE)
    retry = wh.AttemptResult(
        claimed.id,
        "w1",
        1,
        wh.DeliveryStatus.PENDING,
        next_attempt_at=now + 100,
        status_code=500,
        error="HTTP 500: boom",
    )
    assert store.record_webhook_attempt(retry, now)
    assert store.claim_webhook_deliveries("w1", 10, now + 99, LEASE) == []
    (row,) = store.list_webhook_deliveries(hook.id, limit=10)[0]
    assert (row.attempts, row.last_status_code, row.last_error) == (1, 500, "HTTP 500: boom")
    assert [d.id for d in store.claim_webhook_deliveries("w1", 10, now + 101, LEASE)] == [
        claimed.id
    ]


def test_deleting_an_endpoint_discards_its_pending_deliveries(store: port.JobStore) -> None:
    hook = endpoint(store)
    batch = make_batch(store, 1)
    finish_all(store, batch.id, 1)
    store.finalize_batches(time.time())
    assert store.delete_webhook_endpoint(hook.id, "key_a", time.time())
    (row,) = store.list_webhook_deliveries(hook.id, limit=10)[0]
    assert row.status is wh.DeliveryStatus.DISCARDED
    assert store.claim_webhook_deliveries("w1", 10, time.time() + 1, LEASE) == []


@pytest.mark.parametrize("sweeps", [1, 3])
def test_progress_events_are_written_once_per_step(store: port.JobStore, sweeps: int) -> None:
    loud = endpoint(store, progress=25)
    quiet = endpoint(store)
    batch = make_batch(store, 4)
    assert store.add_progress_events() == 0  # nothing finished yet
    for claimed in store.claim("m", 2, "w1", time.time(), LEASE):
        succeed(store, claimed)
    for _ in range(sweeps):
        store.add_progress_events()
    rows = store.list_webhook_deliveries(loud.id, limit=10)[0]
    assert [
        (r.event_type, orjson.loads(webhooks_dialect.event_payload(r.event))["data"]["percent"])
        for r in rows
    ] == [(wh.EventType.BATCH_PROGRESS, 50)]
    assert events_of(store, quiet.id) == []
    assert rows[0].batch_id == batch.id


def test_purging_a_batchs_results_drops_its_settled_deliveries(store: port.JobStore) -> None:
    settled = endpoint(store)
    retrying = endpoint(store)
    now = time.time()
    batch = make_batch(store, 1, results_ttl=60)
    finish_all(store, batch.id, 1)
    store.finalize_batches(now)
    (to_settle,) = store.list_webhook_deliveries(settled.id, limit=1)[0]
    for claimed in store.claim_webhook_deliveries("w1", 10, now, LEASE):
        done = claimed.id == to_settle.id
        outcome = wh.DeliveryStatus.DELIVERED if done else wh.DeliveryStatus.PENDING
        retry_at = None if done else now + 10**6
        store.record_webhook_attempt(
            wh.AttemptResult(claimed.id, "w1", 1, outcome, next_attempt_at=retry_at), now
        )
    while store.purge_step(now + 120, 100):
        pass
    assert events_of(store, settled.id) == []
    assert events_of(store, retrying.id) == [("batch.completed", batch.id)]


def test_upgrading_keeps_pending_events_as_their_data(store_url: str) -> None:
    """0010 turns a stored body into event data; the rendered body is unchanged."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from batchgate.store import engine as engine_module
    from batchgate.store import sql

    body = {
        "id": "evt_1",
        "object": "event",
        "created_at": 100,
        "type": "batch.progress",
        "data": {"id": "batch_1", "percent": 40, "request_counts": {"total": 5, "finished": 2}},
    }
    engine = engine_module.create_engine(store_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(engine_module._MIGRATIONS))
    with engine.connect().execution_options(write=True) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009_finished_index")
        conn.execute(
            sa.text(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, "
                "batch_id, dedupe_key, payload, status, attempts, created_at) VALUES "
                "('msg_1', 'we_1', 'evt_1', 'batch.progress', 'batch_1', "
                "'batch.progress:40', :payload, 'pending', 0, 100.5)"
            ),
            {"payload": orjson.dumps(body).decode()},
        )
        conn.commit()
    engine.dispose()
    upgraded = sql.SqlJobStore.open(store_url)
    try:
        (row,) = upgraded.list_webhook_deliveries("we_1", limit=10)[0]
        assert row.data == {"percent": 40, "request_counts": {"total": 5, "finished": 2}}
        assert orjson.loads(webhooks_dialect.event_payload(row.event)) == body
    finally:
        upgraded.close()
