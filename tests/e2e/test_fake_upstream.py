"""The fake upstream's own contract: control over HTTP, call log, process mode."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream, RemoteUpstream, start_process

CHAT = {"model": "m", "messages": [{"role": "user", "content": "fp-1"}]}


@pytest.fixture(scope="module")
def remote() -> Iterator[RemoteUpstream]:
    with start_process() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(remote: RemoteUpstream) -> None:
    remote.reset()


def post(url: str) -> httpx.Response:
    return httpx.post(url + "/chat/completions", json=CHAT, timeout=5)


def test_process_mode_serves_chat_completions(remote: RemoteUpstream) -> None:
    assert post(remote.openai_base_url).json()["choices"][0]["message"]["content"] == "echo: fp-1"


def test_control_endpoint_scripts_faults_per_fingerprint(remote: RemoteUpstream) -> None:
    remote.configure(by_fingerprint={"fp-1": ["429:1", "503"]})
    statuses = [post(remote.openai_base_url).status_code for _ in range(3)]
    assert statuses == [429, 503, 200]


def test_call_log_records_attempts_outcomes_and_arrival_times(remote: RemoteUpstream) -> None:
    remote.configure(script=["500"])
    post(remote.openai_base_url)
    post(remote.openai_base_url)
    calls = remote.calls("fp-1")
    assert [(c["attempt"], c["outcome"], c["status"]) for c in calls] == [
        (1, "500", 500),
        (2, "ok", 200),
    ]
    assert calls[0]["t"] <= calls[1]["t"]


@pytest.mark.slow  # asserts on elapsed time
def test_latency_setting_delays_replies(remote: RemoteUpstream) -> None:
    remote.configure(latency_ms=200)
    started = time.monotonic()
    post(remote.openai_base_url)
    assert time.monotonic() - started >= 0.2


def test_reset_clears_the_log_and_settings(remote: RemoteUpstream) -> None:
    remote.configure(latency_ms=100)
    post(remote.openai_base_url)
    remote.reset()
    assert remote.calls() == []
    assert remote.configure()["latency_ms"] == 0


def test_fault_rate_is_reproducible_for_a_seed() -> None:
    def outcomes() -> list[int]:
        with FakeUpstream(seed=3) as fake:
            fake.configure(fault_rate=0.5, rate_faults=["503"])
            return [post(fake.openai_base_url).status_code for _ in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert 503 in first and 200 in first


def test_unknown_control_setting_is_rejected(remote: RemoteUpstream) -> None:
    response = httpx.post(remote.base_url + "/_control", json={"latency": 5})
    assert response.status_code == 400
