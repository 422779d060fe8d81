"""Strings that reach the store, over real HTTP on SQLite and PostgreSQL: a
NUL anywhere (path, query, cookie, form, JSON body) gets the dialect's
400, or 404 for an id, and the same answer on both stores (PostgreSQL's text
cannot hold NUL: each of these was a 500 there); a string past its column
is refused or not kept; nothing is stored."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests import harness

MODEL = "fake-chat"


@pytest.fixture
def server(server_on_each_store: harness.RunningServer) -> harness.RunningServer:
    return server_on_each_store


def params(model: str = MODEL) -> dict[str, Any]:
    return {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


# Every route with an id in its path, in every dialect, and every cursor.
PATHS_WITH_IDS = [
    ("GET", "/v1/batches/a%00b"),
    ("GET", "/v1/batches/%00/results"),
    ("POST", "/v1/batches/%00/cancel"),
    ("POST", "/v1/batches/%00/retry"),
    ("GET", "/v1/files/%00"),
    ("GET", "/v1/files/%00/content"),
    ("DELETE", "/v1/files/%00"),
    ("GET", "/v1/messages/batches/%00"),
    ("GET", "/v1/messages/batches/%00/results"),
    ("POST", "/v1/messages/batches/%00/cancel"),
    ("POST", "/v1/messages/batches/%00/retry"),
    ("DELETE", "/v1/messages/batches/%00"),
    ("GET", "/v1/webhook_endpoints/%00"),
    ("DELETE", "/v1/webhook_endpoints/%00"),
    ("GET", "/v1/webhook_endpoints/%00/deliveries"),
    ("GET", "/v1/keys/%00"),
    ("DELETE", "/v1/keys/%00"),
]
QUERIES = [
    "/v1/batches?after=%00",
    "/v1/files?after=%00",
    "/v1/files?purpose=%00",
    "/v1/messages/batches?after_id=%00",
    "/v1/messages/batches?before_id=%00",
    "/v1/batches/batch_x/results?status=%00",
]


def test_a_nul_in_an_id_is_404_and_in_a_query_400_in_the_dialects_envelope(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        for method, path in PATHS_WITH_IDS:
            response = client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 404, (path, response.text)
            body = response.json()
            if path.startswith("/v1/messages"):
                assert body["error"]["type"] == "not_found_error", path
            else:
                assert body["error"]["type"] == "invalid_request_error", path
        for path in QUERIES:
            response = client.get(path)
            assert response.status_code == 400, (path, response.text)
            assert "NUL" in response.text, path


def test_a_nul_in_a_stored_json_string_is_400_naming_it_and_nothing_is_stored(
    server: harness.RunningServer,
) -> None:
    file_batch = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/batches", {"input_file_id": "file-\x00", **file_batch}, "input_file_id"),
        (
            "/v1/batches",
            {"input_file_id": "file-x", "metadata": {"k": "v\x00"}, **file_batch},
            "metadata.k",
        ),
        (
            "/v1/batches",
            {"requests": [{"custom_id": "a", "params": params("fake\x00chat")}]},
            "requests[0].params.model",
        ),
        (
            "/v1/batches",
            {"requests": [{"custom_id": "a", "params": params()}], "metadata": {"k": "\x00"}},
            "metadata.k",
        ),
        (
            "/v1/batches",
            {"requests": [{"custom_id": "a\x00", "params": params()}]},
            "requests[0].custom_id",
        ),
        ("/v1/webhook_endpoints", {"url": "https://example.com/\x00"}, "url"),
        (
            "/v1/webhook_endpoints",
            {"url": "https://example.com/", "description": "a\x00"},
            "description",
        ),
    ]
    with server.client() as client:
        for path, body, param in cases:
            response = client.post(path, json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"]["param"] == param, response.text
        response = client.post(
            "/v1/messages/batches",
            json={"requests": [{"custom_id": "a", "params": params("m\x00")}]},
        )
        assert response.status_code == 400, response.text
        assert "requests[0].params.model" in response.json()["error"]["message"]
        assert client.get("/v1/batches", params={"all_dialects": True}).json()["data"] == []
        assert client.get("/v1/webhook_endpoints").json()["data"] == []


def test_a_nul_in_the_login_form_or_session_cookie_is_no_500(
    server: harness.RunningServer,
) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
        page = browser.get("/ui/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None
        response = browser.post(
            "/ui/login", data={"api_key": "bg-\x00x", "csrf_token": match.group(1)}
        )
        assert response.status_code == 401, response.text
    for cookie in ['"bg-\\000x.abc"', "bg-%00x.abc"]:
        with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
            response = browser.get("/ui/batches", headers={"cookie": f"bg_session={cookie}"})
            assert response.status_code in (303, 400), (cookie, response.text)


def upload(client: httpx.Client, lines: list[dict[str, Any]]) -> str:
    content = "\n".join(json.dumps(line) for line in lines).encode()
    response = client.post(
        "/v1/files", files={"file": ("in.jsonl", content)}, data={"purpose": "batch"}
    )
    assert response.status_code == 200, response.text
    file_id: str = response.json()["id"]
    return file_id


def chat_line(custom_id: str, model: str) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_a_file_naming_a_model_past_its_column_makes_a_failed_batch_not_a_500(
    server: harness.RunningServer,
) -> None:
    with server.client() as client:
        for model in ("m" * 201, "m\x00"):
            file_id = upload(client, [chat_line("a", model), chat_line("b", model)])
            response = client.post(
                "/v1/batches",
                json={
                    "input_file_id": file_id,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
            assert response.status_code == 200, response.text
            batch = response.json()
            assert batch["status"] == "failed"
            assert batch["model"] is None
            assert [e["param"] for e in batch["errors"]["data"]] == ["body.model"] * 2


def test_native_metadata_and_completion_window_are_held_to_openais_rules(
    server: harness.RunningServer,
) -> None:
    request = {"custom_id": "a", "params": params()}
    cases = [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"completion_window": "1s"}, "completion_window"),
    ]
    with server.client() as client:
        for extra, param in cases:
            response = client.post("/v1/batches", json={"requests": [request], **extra})
            assert response.status_code == 400, (extra, response.text)
            assert response.json()["error"]["param"] == param
        assert client.get("/v1/batches").json()["data"] == []
        fine = {"requests": [request], "completion_window": "24h", "metadata": {"k": "v"}}
        assert client.post("/v1/batches", json=fine).status_code == 200


def test_webhook_endpoints_are_capped_per_key_and_progress_steps_at_five_percent(
    server: harness.RunningServer,
) -> None:
    cap = server.settings.webhooks.max_endpoints_per_key
    other = server.new_key("other")
    with server.client() as client, server.client(other) as other_client:
        response = client.post(
            "/v1/webhook_endpoints",
            json={"url": "https://example.com/h", "progress_every_percent": 4},
        )
        assert response.status_code == 400, response.text
        for i in range(cap):
            made = client.post("/v1/webhook_endpoints", json={"url": f"https://example.com/{i}"})
            assert made.status_code == 200, made.text
        response = client.post("/v1/webhook_endpoints", json={"url": "https://example.com/x"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "too_many_webhook_endpoints"
        assert len(client.get("/v1/webhook_endpoints").json()["data"]) == cap
        # The cap is per key: another key is not refused.
        assert (
            other_client.post(
                "/v1/webhook_endpoints", json={"url": "https://example.com/o"}
            ).status_code
            == 200
        )
        first = client.get("/v1/webhook_endpoints").json()["data"][0]["id"]
        assert client.delete(f"/v1/webhook_endpoints/{first}").status_code == 200
        again = client.post("/v1/webhook_endpoints", json={"url": "https://example.com/y"})
        assert again.status_code == 200


@pytest.mark.parametrize("url", ["http://a b/", "http://example.com/a\tb", "http://ex\x00.com/"])
def test_a_webhook_url_httpx_cannot_send_is_refused_at_registration(
    server: harness.RunningServer, url: str
) -> None:
    with server.client() as client:
        response = client.post("/v1/webhook_endpoints", json={"url": url})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "url"
        assert client.get("/v1/webhook_endpoints").json()["data"] == []
