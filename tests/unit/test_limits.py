"""Per-model pacing: the sliding-window limiter and the throttle (overload
back-off and the down-upstream breaker). Time is a fake clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from batchgate.worker import pacing

PERIOD = 60.0
WINDOW = PERIOD + pacing.WINDOW_MARGIN_SECONDS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(
    clock: Clock, *, requests: int | None = None, tokens: int | None = None
) -> pacing.SlidingWindowLimiter:
    return pacing.SlidingWindowLimiter(requests, tokens, PERIOD, clock=clock)


async def test_calls_within_the_limits_are_granted_at_once() -> None:
    clock = Clock()
    window = limiter(clock, requests=2, tokens=100)
    await asyncio.wait_for(window.acquire(40), 1)
    await asyncio.wait_for(window.acquire(40), 1)


async def test_a_call_past_the_request_limit_waits_for_the_window_to_move() -> None:
    clock = Clock()
    window = limiter(clock, requests=2)
    await window.acquire(1)
    clock.now += 10
    await window.acquire(1)
    assert window.delay(clock.now, 1) == pytest.approx(WINDOW - 10)
    clock.now += WINDOW - 10
    assert window.delay(clock.now, 1) == 0


async def test_a_call_past_the_token_limit_blocks() -> None:
    clock = Clock()
    window = limiter(clock, tokens=100)
    await window.acquire(80)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(window.acquire(30), 0.05)


async def test_settling_a_grant_to_its_real_usage_lets_a_waiting_call_through() -> None:
    clock = Clock()
    window = limiter(clock, tokens=100)
    grant = await window.acquire(80)
    waiting = asyncio.create_task(window.acquire(30))
    await asyncio.sleep(0)
    assert not waiting.done()
    window.settle(grant, 10)  # it used 10 of the 80 it was estimated at
    await asyncio.wait_for(waiting, 1)


def test_a_call_bigger_than_the_token_limit_runs_alone() -> None:
    clock = Clock()
    window = limiter(clock, tokens=100)
    assert window.delay(clock.now, 5000) == 0


def test_an_overload_halves_the_concurrency_and_pauses_until_retry_after() -> None:
    throttle = pacing.ModelThrottle(8)
    throttle.on_failure(overloaded=True, retry_after=5.0, now=100.0)
    assert throttle.capacity(0, now=104.0) == 0
    assert throttle.capacity(0, now=105.0) == 4


def test_concurrency_comes_back_gradually_after_an_overload() -> None:
    throttle = pacing.ModelThrottle(8)
    throttle.on_failure(overloaded=True, retry_after=0.0, now=0.0)
    throttle.on_success()
    assert throttle.capacity(0, now=1.0) == 4
    for _ in range(40):
        throttle.on_success()
    assert throttle.capacity(0, now=1.0) == 8


def test_a_run_of_failures_opens_the_breaker_to_one_probe_at_a_time() -> None:
    throttle = pacing.ModelThrottle(8)
    for _ in range(pacing.ModelThrottle.BREAKER_THRESHOLD):
        throttle.on_failure(overloaded=False, retry_after=None, now=0.0)
    assert throttle.breaker_open
    later = throttle.paused_until
    assert throttle.capacity(0, now=later) == 1
    assert throttle.capacity(1, now=later) == 0


def test_a_success_closes_the_breaker() -> None:
    throttle = pacing.ModelThrottle(8)
    for _ in range(pacing.ModelThrottle.BREAKER_THRESHOLD):
        throttle.on_failure(overloaded=False, retry_after=None, now=0.0)
    throttle.on_success()
    assert not throttle.breaker_open
    assert throttle.capacity(0, now=throttle.paused_until) == 8


def _open_breaker(seed: int, failures: int) -> float:
    throttle = pacing.ModelThrottle(8, rng=random.Random(seed))
    for _ in range(failures):
        throttle.on_failure(overloaded=False, retry_after=None, now=0.0)
    return throttle.paused_until


def test_breaker_pauses_are_the_retry_policys_jittered_doubling_backoff() -> None:
    threshold = pacing.ModelThrottle.BREAKER_THRESHOLD
    ceiling = pacing.ModelThrottle.PAUSES.max_seconds
    # The third failed probe waits at most 4 s (1, 2, 4, ...); never past the cap.
    assert all(0.0 <= _open_breaker(seed, threshold + 2) <= 4.0 for seed in range(50))
    assert all(_open_breaker(seed, threshold + 20) <= ceiling for seed in range(50))
    # Full jitter: workers that saw the same outage do not all probe at once.
    assert len({_open_breaker(seed, threshold + 2) for seed in range(20)}) > 1


def test_an_overload_without_retry_after_pauses_for_a_jittered_second_at_most() -> None:
    pauses = set()
    for seed in range(20):
        throttle = pacing.ModelThrottle(8, rng=random.Random(seed))
        throttle.on_failure(overloaded=True, retry_after=None, now=0.0)
        assert 0.0 <= throttle.paused_until <= 1.0
        pauses.add(throttle.paused_until)
    assert len(pauses) > 1
