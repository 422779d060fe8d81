"""Webhook delivery: the worker's side of the outbox.

Due deliveries are leased like requests (``claim_webhook_deliveries``: one
statement, ``SKIP LOCKED`` on PostgreSQL), so several workers never send the
same one at once; a worker that dies mid-send leaves a lease that lapses, and
the delivery is sent again (at least once; receivers dedupe on
``webhook-id``, which is the same on every attempt). Each attempt is signed
afresh per the Standard Webhooks spec (its timestamp is the attempt's), and
its outcome is written back fenced on the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import socket
import ssl
import time
from collections.abc import Iterator

import httpx
from standardwebhooks.webhooks import Webhook

from batchgate import config
from batchgate.dialects import webhooks as webhooks_dialect
from batchgate.domain import errors, ids, retry
from batchgate.domain import webhooks as wh
from batchgate.store import port
from batchgate.wire import webhook_urls

log = logging.getLogger("batchgate.webhooks")

_ERROR_BODY = 200  # characters of a failing answer kept as its last_error


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once per process: loading
    the CA bundle takes ~20 ms of CPU, which every worker start paid again
    (and the in-process test servers start hundreds)."""
    return httpx.create_ssl_context()


class AddressRefused(Exception):
    """The URL's host resolves to an address this server may not call."""


def signed_headers(
    delivery: wh.ClaimedDelivery, body: bytes, at: datetime.datetime
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt at sending ``body``."""
    signature = Webhook(delivery.secret).sign(delivery.id, at, body.decode())
    return {
        "content-type": "application/json",
        "user-agent": "batchgate-webhooks/1",
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


class Deliverer:
    def __init__(
        self,
        store: port.WebhookOutbox,
        settings: config.WebhookSettings,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id or ids.new_worker_id()
        # Every failed delivery is tried again, for ``retry_for`` after its event.
        self.policy = retry.RetryPolicy(
            max_attempts=None,
            base_seconds=settings.backoff_base_seconds,
            max_seconds=settings.backoff_max_seconds,
            deadline_seconds=settings.retry_seconds,
        )
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Deliver until cancelled. Sends cut short by cancellation are sent
        again once their leases lapse."""
        timeout = httpx.Timeout(self.settings.timeout_seconds)
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, verify=_tls_context()
        ) as client:
            last_progress = 0.0
            try:
                while True:
                    claimed = await self._claim()
                    for delivery in claimed:
                        task = asyncio.create_task(self.attempt(client, delivery))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                    if time.monotonic() - last_progress >= self.settings.progress_seconds:
                        last_progress = time.monotonic()
                        with _logged("progress events"):
                            await asyncio.to_thread(self.store.add_progress_events)
                    if not claimed:
                        await asyncio.sleep(self.settings.poll_seconds)
            finally:
                for task in list(self._inflight):
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _claim(self) -> list[wh.ClaimedDelivery]:
        room = self.settings.max_concurrency - len(self._inflight)
        if room <= 0:
            return []
        with _logged("claiming webhook deliveries"):
            return await asyncio.to_thread(
                self.store.claim_webhook_deliveries,
                self.worker_id,
                room,
                time.time(),
                self.settings.lease,
            )
        return []

    async def attempt(self, client: httpx.AsyncClient, delivery: wh.ClaimedDelivery) -> None:
        """Send one delivery once and record what came of it."""
        status_code, error = await self._send(client, delivery)
        if error is not None:
            error = error[: wh.MAX_ERROR_CHARS]
        now_s = time.time()
        if error is None:
            result = wh.AttemptResult(
                delivery.id,
                self.worker_id,
                delivery.attempt,
                wh.DeliveryStatus.DELIVERED,
                status_code=status_code,
            )
        else:
            decision = self.policy.decide(
                retry.Failure(retryable=True), delivery.attempt, elapsed=now_s - delivery.created_at
            )
            retry_at = None if isinstance(decision, retry.GiveUp) else now_s + decision.delay
            result = wh.AttemptResult(
                delivery.id,
                self.worker_id,
                delivery.attempt,
                wh.DeliveryStatus.PENDING if retry_at is not None else wh.DeliveryStatus.FAILED,
                next_attempt_at=retry_at,
                status_code=status_code,
                error=error,
            )
        with _logged(f"recording webhook delivery {delivery.id}"):
            # Not recorded (store down): the lease lapses and it is sent again.
            await asyncio.to_thread(self.store.record_webhook_attempt, result, now_s)

    async def _send(
        self, client: httpx.AsyncClient, delivery: wh.ClaimedDelivery
    ) -> tuple[int | None, str | None]:
        """(status code, error) of one POST. Every failure is an error to
        record: one left to escape would leave the attempt unrecorded and
        the delivery sent again every lease, forever."""
        try:
            url = await self._check_address(delivery.url)
            now = datetime.datetime.now(tz=datetime.UTC)
            body = webhooks_dialect.event_payload(delivery.event)
            response = await client.post(
                url, content=body, headers=signed_headers(delivery, body, now)
            )
        except AddressRefused as exc:
            return None, str(exc)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:
            log.warning("webhook delivery %s failed: %r", delivery.id, exc)
            return None, f"cannot send to this url ({type(exc).__name__})"
        if not 200 <= response.status_code < 300:
            # Redirects are failures too: following them would let a
            # receiver point us at an address we refuse.
            return response.status_code, (
                f"HTTP {response.status_code}: {response.text[:_ERROR_BODY]}"
            )
        return response.status_code, None

    async def _check_address(self, url: str) -> httpx.URL:
        """Refuse hosts off the allowlist, and (unless allowed) names that
        resolve to loopback, private, link-local or reserved addresses. The
        connection resolves the name again, so a hostile DNS server could
        still swap the address in between: see docs/webhooks.md on SSRF. What
        the tenant reads in ``last_error`` never names what a name resolved
        to (internal DNS is the operator's, not the tenant's); the log does."""
        try:
            parsed = webhook_urls.parse(url)
        except errors.InvalidRequest as exc:
            raise AddressRefused(f"cannot send to this url: {exc.message}") from None
        host, port_number = webhook_urls.host_and_port(parsed)
        if not wh.host_allowed(host, tuple(self.settings.allowed_hosts)):
            raise AddressRefused(f"host {host!r} is not in [webhooks] allowed_hosts")
        if self.settings.allow_private_addresses:
            return parsed
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port_number, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            log.info("webhook host %r does not resolve: %s", host, exc)
            raise AddressRefused(wh.CANNOT_RESOLVE) from None
        for info in infos:
            address = str(info[4][0])
            if not wh.address_allowed(address, allow_private=False):
                log.info("webhook host %r resolves to %s: refused", host, address)
                raise AddressRefused(wh.REFUSED_PRIVATE)
        return parsed


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """Log and swallow a failure of one step: the loop goes on."""
    try:
        yield
    except Exception:
        log.exception("%s failed", what)
