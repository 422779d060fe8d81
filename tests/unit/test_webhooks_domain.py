"""Webhook rules that need no I/O: progress steps, when to give up, which
addresses may be called."""

from __future__ import annotations

import random

import pytest

from batchgate.domain import errors, retry
from batchgate.domain import webhooks as wh
from batchgate.domain.states import BatchStatus


def test_each_ending_status_has_its_event() -> None:
    assert [
        wh.event_for(s).value
        for s in (
            BatchStatus.COMPLETED,
            BatchStatus.FAILED,
            BatchStatus.EXPIRED,
            BatchStatus.CANCELLED,
        )
    ] == ["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]


@pytest.mark.parametrize(
    ("done", "total", "every", "step"),
    [(0, 10, 10, None), (1, 10, 10, 10), (7, 10, 25, 50), (10, 10, 10, None), (3, 0, 10, None)],
)
def test_progress_step_is_the_highest_multiple_reached_below_the_end(
    done: int, total: int, every: int, step: int | None
) -> None:
    assert wh.progress_step(done, total, every) == step


def test_retries_back_off_and_stop_at_the_end_of_the_retry_period() -> None:
    # The policy the deliverer uses (worker/webhooks.py): the one RetryPolicy,
    # with a deadline and no attempt cap.
    policy = retry.RetryPolicy(
        max_attempts=None, base_seconds=5, max_seconds=3600, deadline_seconds=86400
    )
    rng = random.Random(1)
    failed = retry.Failure(retryable=True)
    first = policy.decide(failed, 1, rng=rng, elapsed=10)
    assert isinstance(first, retry.RetryAt) and 10 <= 10 + first.delay <= 15
    late = policy.decide(failed, 30, rng=rng, elapsed=86000)
    assert isinstance(late, retry.RetryAt) and 86000 + late.delay <= 86400  # never past it
    assert policy.decide(failed, 31, rng=rng, elapsed=86400) is retry.GIVE_UP


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_refused_unless_allowed(address: str) -> None:
    assert not wh.address_allowed(address, allow_private=False)
    assert wh.address_allowed(address, allow_private=True)


def test_public_addresses_are_allowed() -> None:
    assert wh.address_allowed("93.184.216.34", allow_private=False)
    assert wh.address_allowed("2606:4700::1111", allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix
        "64:ff9b::7f00:1",
        "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::ffff:0:7f00:1",  # SIIT IPv4-translated
        "::ffff:0:a00:1",
    ],
)
def test_ipv6_forms_carrying_an_internal_ipv4_address_are_refused(address: str) -> None:
    assert not wh.address_allowed(address, allow_private=False)


@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "::ffff:0:808:808"]
)
def test_ipv6_forms_carrying_a_public_ipv4_address_are_allowed(address: str) -> None:
    assert wh.address_allowed(address, allow_private=False)


def test_allowlist_takes_exact_names_and_wildcard_subdomains() -> None:
    allowed = ("hooks.example.com", "*.corp.example")
    assert wh.host_allowed("hooks.example.com", allowed)
    assert wh.host_allowed("a.b.corp.example", allowed)
    assert not wh.host_allowed("corp.example.evil", allowed)
    assert not wh.host_allowed("example.com", allowed)
    assert wh.host_allowed("anything", ())


def test_a_host_off_the_allowlist_is_refused_at_registration() -> None:
    with pytest.raises(errors.InvalidRequest, match="allowlist"):
        wh.check_url("https://elsewhere.com/x", allow_private=False, allowed_hosts=("a.com",))
