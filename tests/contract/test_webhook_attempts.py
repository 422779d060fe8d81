"""A delivery attempt that cannot be sent is recorded like any failed one,
on every store: its error, its attempt count, the retry deadline. One that
escaped unrecorded was sent again every lease, forever (a "poison"
delivery), and what a tenant reads of a refusal names no internal address."""

from __future__ import annotations

import time

import httpx
import pytest

from batchgate import config
from batchgate.domain import ids
from batchgate.domain import webhooks as wh
from batchgate.store import port
from batchgate.worker import webhooks as worker_webhooks
from tests.contract.builders import LEASE, make_batch, succeed


def pending_delivery(store: port.JobStore, url: str) -> wh.ClaimedDelivery:
    """An endpoint stored as it is (as a row from before registration was
    strict), one ended batch, and its delivery claimed."""
    made = wh.Endpoint(
        ids.new_webhook_endpoint_id(), "key_a", url, wh.TERMINAL_EVENTS, None, None, 1
    )
    assert store.create_webhook_endpoint(made, ids.new_webhook_secret()) is not None
    batch = make_batch(store, 1)
    for claimed in store.claim("m", 1, "w1", time.time(), LEASE):
        succeed(store, claimed)
    assert store.finalize_batches(time.time()) == [batch.id]
    (delivery,) = store.claim_webhook_deliveries("hooks", 10, time.time(), 30.0)
    return delivery


async def attempt_once(
    store: port.JobStore, delivery: wh.ClaimedDelivery, **settings: object
) -> wh.Delivery:
    deliverer = worker_webhooks.Deliverer(
        store, config.WebhookSettings.model_validate(settings), worker_id="hooks"
    )
    async with httpx.AsyncClient(timeout=2) as client:
        await deliverer.attempt(client, delivery)
    (row,) = [
        found
        for endpoint in store.list_webhook_endpoints("key_a")
        for found in store.list_webhook_deliveries(endpoint.id, limit=10)[0]
    ]
    return row


# These pass the standard library's urlsplit (the old registration check)
# but make httpx raise InvalidURL, which is not an httpx.HTTPError.
POISON = ["http://127.0.0.1:9/a\tb", "http://127.0.0.1:9/a\x7fb"]


@pytest.mark.parametrize("url", POISON)
async def test_a_url_httpx_refuses_is_recorded_and_retried_later(
    store: port.JobStore, url: str
) -> None:
    row = await attempt_once(store, pending_delivery(store, url), allow_private_addresses=True)
    assert row.attempts == 1
    assert row.status is wh.DeliveryStatus.PENDING
    assert row.last_error is not None and "cannot send to this url" in row.last_error
    assert row.next_attempt_at is not None and row.next_attempt_at > time.time()


async def test_a_url_httpx_refuses_ends_failed_at_the_retry_deadline(
    store: port.JobStore,
) -> None:
    delivery = pending_delivery(store, POISON[0])
    row = await attempt_once(store, delivery, allow_private_addresses=True, retry_for=0)
    assert row.status is wh.DeliveryStatus.FAILED
    assert row.last_error is not None
    assert store.claim_webhook_deliveries("hooks", 10, time.time() + 3600, 30.0) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://localhost:9/hook", "refused: private address"),
        ("http://does-not-exist.invalid/hook", "cannot resolve host"),
    ],
)
async def test_a_refused_address_shows_the_tenant_no_internal_name_or_address(
    store: port.JobStore, url: str, shown: str
) -> None:
    row = await attempt_once(store, pending_delivery(store, url))
    assert row.last_error == shown
