"""Webhooks, pure: event types, the event body, delivery states, progress
steps, and which URLs and addresses may be called (when to try a delivery
again is the one retry policy's, domain/retry.py).

A batch that ends writes one event per subscribed endpoint of its owner into
the outbox (``webhook_deliveries``) in the transaction that ends it; workers
deliver the rows, signed per the Standard Webhooks spec. The outbox keeps
each :class:`Event` as data; its body (the wire shape) is rendered by
:mod:`batchgate.dialects.webhooks` when it is sent or shown.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import urllib.parse
from collections.abc import Iterable
from typing import Any

from batchgate.domain import errors, ids
from batchgate.domain.states import BatchStatus


class EventType(enum.StrEnum):
    BATCH_COMPLETED = "batch.completed"
    BATCH_FAILED = "batch.failed"
    BATCH_EXPIRED = "batch.expired"
    BATCH_CANCELLED = "batch.cancelled"
    # batchgate's own, opt-in per endpoint (``progress_every_percent``).
    BATCH_PROGRESS = "batch.progress"


TERMINAL_EVENTS = (
    EventType.BATCH_COMPLETED,
    EventType.BATCH_FAILED,
    EventType.BATCH_EXPIRED,
    EventType.BATCH_CANCELLED,
)

_EVENT_FOR_STATUS = {
    BatchStatus.COMPLETED: EventType.BATCH_COMPLETED,
    BatchStatus.FAILED: EventType.BATCH_FAILED,
    BatchStatus.EXPIRED: EventType.BATCH_EXPIRED,
    BatchStatus.CANCELLED: EventType.BATCH_CANCELLED,
}


def event_for(status: BatchStatus) -> EventType:
    """The event a batch ending in ``status`` sends."""
    return _EVENT_FOR_STATUS[status]


# The finest progress step an endpoint may ask for: at most 19 progress
# events per batch and endpoint, so a key's batch makes at most
# 20 x [webhooks] max_endpoints_per_key calls (200 by default) however many
# requests it holds; 5 % still moves visibly on a dashboard.
MIN_PROGRESS_PERCENT = 5
# The longest ``last_error`` a delivery keeps (what a tenant reads of it).
MAX_ERROR_CHARS = 300
# What a tenant is told when the guard refuses an address: never the
# internal name or address it resolved to.
REFUSED_PRIVATE = "refused: private address"
CANNOT_RESOLVE = "cannot resolve host"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (or being sent, under a lease)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # still failing when the retry period ran out
    DISCARDED = "discarded"  # its endpoint was deleted first


@dataclasses.dataclass(frozen=True)
class Endpoint:
    id: str
    owner: str
    url: str
    event_types: tuple[EventType, ...]
    progress_every_percent: int | None
    description: str | None
    created_at: float

    def wants(self, event: EventType) -> bool:
        if event is EventType.BATCH_PROGRESS:
            return self.progress_every_percent is not None
        return event in self.event_types


@dataclasses.dataclass(frozen=True)
class Event:
    """What happened, as data: one event, the same for every endpoint it
    goes to and on every attempt (so the rendered body is the same bytes)."""

    id: str
    type: EventType
    batch_id: str
    created_at: float
    # The event's fields besides the batch id (``percent``, ``request_counts``).
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One event's delivery to one endpoint: its outbox row."""

    id: str  # the webhook-id header
    endpoint_id: str
    event_id: str
    event_type: EventType
    batch_id: str
    data: dict[str, Any]  # Event.data
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_attempt_at: float | None
    last_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: float | None

    @property
    def event(self) -> Event:
        return Event(self.event_id, self.event_type, self.batch_id, self.created_at, self.data)


@dataclasses.dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to one worker for one attempt, with what it needs to send."""

    id: str
    url: str
    secret: str
    event: Event
    attempt: int
    created_at: float


@dataclasses.dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to, written back fenced on the lease."""

    delivery_id: str
    worker_id: str
    attempt: int
    status: DeliveryStatus
    next_attempt_at: float | None = None
    status_code: int | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class NewDelivery:
    """An outbox row to write: one event for one endpoint."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: EventType
    batch_id: str
    # Unique per (endpoint, batch): the event type, or "batch.progress:40".
    dedupe_key: str
    # The event's fields besides the batch id (``percent``, ``request_counts``).
    data: dict[str, Any]
    created_at: float

    @property
    def event(self) -> Event:
        return Event(self.event_id, self.event_type, self.batch_id, self.created_at, self.data)


def _deliveries(
    event: EventType,
    batch_id: str,
    endpoints: Iterable[Endpoint],
    now: float,
    dedupe_key: str,
    **data: Any,
) -> list[NewDelivery]:
    """One event (one id, one body) for each endpoint; none without endpoints."""
    targets = list(endpoints)
    if not targets:
        return []
    event_id = ids.new_event_id()
    return [
        NewDelivery(
            ids.new_webhook_message_id(),
            endpoint.id,
            event_id,
            event,
            batch_id,
            dedupe_key,
            dict(data),
            now,
        )
        for endpoint in targets
    ]


def ended_deliveries(
    batch_id: str, status: BatchStatus, endpoints: Iterable[Endpoint], now: float
) -> list[NewDelivery]:
    """The deliveries a batch ending in ``status`` makes to its owner's endpoints."""
    event = event_for(status)
    subscribed = [e for e in endpoints if e.wants(event)]
    return _deliveries(event, batch_id, subscribed, now, event.value)


def progress_deliveries(
    batch_id: str, total: int, finished: int, endpoints: Iterable[Endpoint], now: float
) -> list[NewDelivery]:
    """``batch.progress`` for each endpoint that asked for it, at the highest
    step reached (the store writes each step once per endpoint)."""
    made: list[NewDelivery] = []
    for endpoint in endpoints:
        every = endpoint.progress_every_percent
        step = None if every is None else progress_step(finished, total, every)
        if step is None:
            continue
        made += _deliveries(
            EventType.BATCH_PROGRESS,
            batch_id,
            [endpoint],
            now,
            f"{EventType.BATCH_PROGRESS.value}:{step}",
            percent=step,
            request_counts={"total": total, "finished": finished},
        )
    return made


def progress_step(done: int, total: int, every: int) -> int | None:
    """The highest multiple of ``every`` percent that ``done`` of ``total``
    has reached, if any below 100 (the end is the terminal event's news)."""
    if total <= 0 or every <= 0:
        return None
    step = (done * 100 // total) // every * every
    return step if 0 < step < 100 else None


# -- which URLs may be called (SSRF) ----------------------------------------


def check_url(url: str, *, allow_private: bool, allowed_hosts: tuple[str, ...]) -> str:
    """Validate an endpoint URL at registration: http(s), a host, and (when
    the host is written as an address or is ``localhost``) not a private
    address unless allowed. Names are resolved, and checked again, at every
    delivery (:func:`address_allowed`)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise errors.InvalidRequest(f"url is not a valid URL: {exc}", param="url") from exc
    if parts.scheme not in ("http", "https"):
        raise errors.InvalidRequest(
            f"url must be http:// or https://; got {parts.scheme or 'no'} scheme", param="url"
        )
    if not host:
        raise errors.InvalidRequest("url must name a host", param="url")
    if not host_allowed(host, allowed_hosts):
        raise errors.InvalidRequest(
            f"host {host!r} is not in this server's webhook allowlist ([webhooks] allowed_hosts)",
            param="url",
        )
    literal = _literal_address(host)
    if literal is not None and not address_allowed(literal, allow_private=allow_private):
        raise errors.InvalidRequest(
            f"url points at a private, loopback or reserved address ({host}); this server "
            "allows that only with [webhooks] allow_private_addresses = true "
            "(or BATCHGATE_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES=true)",
            param="url",
        )
    return url


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """No allowlist: any host. Otherwise an exact name, or ``*.example.com``
    for its subdomains."""
    if not allowed_hosts:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        entry = entry.lower().rstrip(".")
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _literal_address(host: str) -> str | None:
    if host.lower().rstrip(".") == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a webhook may be sent to this IP: public unicast addresses
    always; loopback, private, link-local (cloud metadata), multicast and
    reserved ones only when the operator allowed them. An IPv6 address that
    carries an IPv4 one (mapped, compatible, NAT64, 6to4, SIIT, Teredo)
    reaches that IPv4 address through a translator, so both are judged."""
    if allow_private:
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _LOCAL_NAT64):
            return False
        embedded = embedded_ipv4(ip)
        if embedded is not None and not _public(embedded):
            return False
        if ip.ipv4_mapped is not None:
            return True  # judged as IPv4: the mapped form is not global itself
    return _public(ip)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


# RFC 8215's local-use NAT64 prefix: where the IPv4 part sits depends on the
# operator's prefix length, so nothing in it is judged public.
_LOCAL_NAT64 = (ipaddress.IPv6Network("64:ff9b:1::/48"),)
_WELL_KNOWN_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765's IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291's deprecated IPv4-compatible


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries, if it is of a form that does."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address: the one a packet reaches
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _WELL_KNOWN_NAT64 or ip in _SIIT:
        return low32
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: or ::1, which are judged as IPv6
        return low32
    return None
