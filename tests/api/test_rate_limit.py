"""The per-key API rate limit over real HTTP: 429 with Retry-After in the
dialect's envelope, and other keys unaffected; the dashboard's sessions on
their key's limit; failed authentications limited per client address,
without refusing a key that verifies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from batchgate import config
from batchgate.domain.keys import ApiKey
from tests import harness

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.RunningServer]:
    settings = harness.make_settings(tmp_path, {})
    settings.rate_limit = config.RateLimitSettings(
        requests_per_second=0.5, burst=3, failed_auth_per_second=0.5, failed_auth_burst=3
    )
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


def _count_lookups(server: harness.RunningServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key lookup by display prefix (API keys and dashboard sessions)."""
    seen: list[str] = []
    lookup = server.store.keys_with_prefix

    def counted(prefix: str) -> list[tuple[ApiKey, str]]:
        seen.append(prefix)
        return lookup(prefix)

    monkeypatch.setattr(server.store, "keys_with_prefix", counted)
    return seen


def test_bad_keys_are_limited_per_address(
    server: harness.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = _count_lookups(server, monkeypatch)
    with server.client("bg-not-a-key-at-all") as client:
        statuses = [client.get("/v1/batches").status_code for _ in range(3)]
        refused = client.get("/v1/batches")
    assert statuses == [401, 401, 401]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert len(lookups) == 4  # each key is looked up: a right one must get through


def test_a_valid_key_works_from_an_address_past_its_failed_auth_limit(
    tmp_path: Path,
) -> None:
    """One NAT or proxy carries many tenants: 60+ wrong keys from it (the
    default budget) get 429, and a valid key from the same address still
    works, on the API and the dashboard's login."""
    with harness.serve(harness.make_settings(tmp_path, {}), with_worker=False) as server:
        with server.client("bg-guessing-0123456789") as guesser:
            statuses = [guesser.get("/v1/batches").status_code for _ in range(61)]
            still_refused = guesser.get("/v1/batches")
        with server.client() as tenant:
            assert tenant.get("/v1/batches").status_code == 200
        with server.http_client(base_url=server.base_url, timeout=30) as browser:
            assert _log_in(browser, server.api_key).status_code == 303
            assert browser.get("/ui/batches").status_code == 200
    assert statuses[:60] == [401] * 60
    assert statuses[60] == 429
    assert still_refused.status_code == 429


def _log_in(browser: httpx.Client, api_key: str) -> httpx.Response:
    form = browser.get("/ui/login")
    match = _CSRF.search(form.text)
    assert match, form.text
    return browser.post("/ui/login", data={"api_key": api_key, "csrf_token": match.group(1)})


def test_dashboard_pages_spend_the_sessions_key_bucket(server: harness.RunningServer) -> None:
    with server.http_client(base_url=server.base_url, timeout=30) as browser:
        assert _log_in(browser, server.api_key).status_code == 303
        statuses = [browser.get("/ui/batches").status_code for _ in range(3)]
        refused = browser.get("/ui/batches")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert "Rate limit reached" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    with server.client() as client:  # the same key's bucket as its API calls
        assert client.get("/v1/batches").status_code == 429


def test_dead_session_cookies_are_limited_per_address(
    server: harness.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = _count_lookups(server, monkeypatch)
    forged = {"bg_session": "bg-forged0.not-a-signed-session"}
    with server.http_client(base_url=server.base_url, timeout=30, cookies=forged) as browser:
        statuses = [browser.get("/ui/batches").status_code for _ in range(3)]
        refused = browser.get("/ui/batches")
        login_form = browser.get("/ui/login")
    assert statuses == [303, 303, 303]  # to the login page
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert login_form.status_code == 200  # still served, without a lookup
    assert len(lookups) == 4


def test_wrong_keys_on_the_login_form_are_limited_per_address(
    server: harness.RunningServer,
) -> None:
    with server.http_client(base_url=server.base_url, timeout=30) as browser:
        statuses = [_log_in(browser, "bg-wrong-key-000000").status_code for _ in range(3)]
        refused = _log_in(browser, "bg-wrong-key-000000")
        valid = _log_in(browser, server.api_key)
    assert statuses == [401, 401, 401]
    assert refused.status_code == 429
    assert "Too many failed authentications" in refused.text
    assert valid.status_code == 303  # a key that verifies is never refused
