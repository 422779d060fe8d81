"""The per-key API rate limit over real HTTP: 429 with Retry-After in the
dialect's envelope, and other keys unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgate import config
from tests import harness


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.RunningServer]:
    settings = harness.make_settings(tmp_path, {})
    settings.rate_limit = config.RateLimitSettings(requests_per_second=0.5, burst=3)
    with harness.serve(settings, with_worker=False) as running:
        yield running


def test_past_the_burst_a_key_gets_429_with_retry_after(server: harness.RunningServer) -> None:
    with server.client() as client:
        statuses = [client.get("/v1/batches").status_code for _ in range(3)]
        refused = client.get("/v1/batches")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 2  # one token per 2 s


def test_the_anthropic_routes_answer_in_anthropics_envelope(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        for _ in range(3):
            client.get("/v1/messages/batches")
        refused = client.get("/v1/messages/batches")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in refused.headers


def test_one_key_over_its_limit_does_not_limit_another(server: harness.RunningServer) -> None:
    other = server.new_key()
    with server.client() as busy, server.client(other) as quiet:
        for _ in range(4):
            busy.get("/v1/batches")
        assert busy.get("/v1/batches").status_code == 429
        assert quiet.get("/v1/batches").status_code == 200


def test_unauthenticated_calls_are_401_not_429(server: harness.RunningServer) -> None:
    with server.client("bg-not-a-key-at-all") as client:
        assert {client.get("/v1/batches").status_code for _ in range(5)} == {401}
