"""Behind a reverse proxy that rewrites ``Host`` (nginx's default), the URLs
batchgate builds are the ones the client used, when the proxy is one of
``forwarded_allow_ips``; from any other peer the forwarded headers are
ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from batchgate import config
from tests import harness
from tests.fakes.proxy import ReverseProxy, reverse_proxy
from tests.fakes.upstream import FakeUpstream

MODEL = "claude-fake"


def settings(tmp_path: Path, upstream: FakeUpstream, **fields: str) -> config.Settings:
    models = {
        MODEL: config.ModelConfig(
            name=MODEL, backend="anthropic", base_url=upstream.base_url, api_key_env=None
        )
    }
    return harness.make_settings(tmp_path, models).model_copy(update=fields)


def ended_batch(sdk: anthropic.Anthropic) -> str:
    created = sdk.messages.batches.create(
        requests=[
            {
                "custom_id": "one",
                "params": {
                    "model": MODEL,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": "hello through the proxy"}],
                },
            }
        ]
    )
    harness.wait_until(
        lambda: sdk.messages.batches.retrieve(created.id).processing_status == "ended",
        30,
        "the batch to end",
    )
    return created.id


@pytest.fixture
def proxied(
    tmp_path: Path, upstream: FakeUpstream
) -> Iterator[tuple[harness.RunningServer, ReverseProxy]]:
    with (
        harness.serve_socket(settings(tmp_path, upstream)) as server,
        reverse_proxy(server.url) as proxy,
    ):
        yield server, proxy


def test_the_sdk_reads_results_from_the_public_address_behind_a_trusted_proxy(
    proxied: tuple[harness.RunningServer, ReverseProxy],
) -> None:
    server, proxy = proxied
    assert proxy.url != server.url
    with anthropic.Anthropic(base_url=proxy.url, api_key=server.api_key, max_retries=0) as sdk:
        batch_id = ended_batch(sdk)
        results_url = sdk.messages.batches.retrieve(batch_id).results_url
        results = list(sdk.messages.batches.results(batch_id))
    assert results_url == f"{proxy.url}/v1/messages/batches/{batch_id}/results"
    assert [line.result.type for line in results] == ["succeeded"]
    # The SDK followed results_url: through the proxy, not around it.
    assert ("GET", f"/v1/messages/batches/{batch_id}/results") in proxy.log


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    untrusted = settings(tmp_path, upstream, forwarded_allow_ips="192.0.2.7")
    with (
        harness.serve_socket(untrusted) as server,
        reverse_proxy(server.url) as proxy,
        anthropic.Anthropic(base_url=proxy.url, api_key=server.api_key, max_retries=0) as sdk,
    ):
        batch_id = ended_batch(sdk)
        results_url = sdk.messages.batches.retrieve(batch_id).results_url
        internal = server.url
    assert results_url == f"{internal}/v1/messages/batches/{batch_id}/results"


@pytest.mark.parametrize(
    ("headers", "public"),
    [
        (
            {"x-forwarded-host": "api.example.com", "x-forwarded-proto": "https"},
            "https://api.example.com",
        ),
        (
            {
                "x-forwarded-host": "api.example.com",
                "x-forwarded-port": "8443",
                "x-forwarded-proto": "https",
            },
            "https://api.example.com:8443",
        ),
        ({"x-forwarded-host": "evil.example, api.example.com"}, "http://api.example.com"),
        (
            {"forwarded": 'for=198.51.100.1;host="api.example.com:9000";proto=https'},
            "https://api.example.com:9000",
        ),
        ({"x-forwarded-host": "bad host/../x"}, None),
        ({"forwarded": 'host="a,b";proto=https'}, None),
    ],
)
def test_which_forwarded_values_make_the_public_address(
    proxied: tuple[harness.RunningServer, ReverseProxy], headers: dict[str, str], public: str | None
) -> None:
    server, _proxy = proxied
    with server.anthropic(max_retries=0) as sdk:
        batch_id = ended_batch(sdk)
    with server.client(**headers) as client:
        shown = client.get(f"/v1/messages/batches/{batch_id}").json()["results_url"]
    assert shown == f"{public or server.base_url}/v1/messages/batches/{batch_id}/results"


def test_dashboard_links_use_the_public_address(
    proxied: tuple[harness.RunningServer, ReverseProxy],
) -> None:
    _server, proxy = proxied
    page = httpx.get(f"{proxy.url}/ui/login")
    assert page.status_code == 200
    assert f'href="{proxy.url}/ui/static/ui.css"' in page.text


@pytest.mark.parametrize(
    ("environ", "toml", "expected"),
    [
        ({}, "", "127.0.0.1,::1"),  # uvicorn's default
        ({"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, "", "10.0.0.0/8"),  # uvicorn's variable
        ({}, '[server]\nforwarded_allow_ips = "*"\n', "*"),
        (
            {"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "BATCHGATE_FORWARDED_ALLOW_IPS": "10.1.1.1"},
            '[server]\nforwarded_allow_ips = "*"\n',
            "10.1.1.1",
        ),
    ],
)
def test_trusted_proxies_are_set_like_uvicorns_forwarded_allow_ips(
    tmp_path: Path, environ: dict[str, str], toml: str, expected: str
) -> None:
    path = tmp_path / "batchgate.toml"
    path.write_text(toml)
    assert config.load(path, environ=environ).forwarded_allow_ips == expected


def test_serve_takes_the_trusted_proxies_on_its_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batchgate import cli
    from batchgate.cli import options

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    args = cli.build_parser().parse_args(["serve", "--forwarded-allow-ips", "192.0.2.1,::1"])
    assert options.settings(args).forwarded_allow_ips == "192.0.2.1,::1"
