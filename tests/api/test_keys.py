"""``/v1/keys``: admin keys manage keys over the API; ordinary keys cannot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgate.domain import keys as key_model
from tests import harness


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.RunningServer]:
    with harness.serve(harness.make_settings(tmp_path, {}), with_worker=False) as running:
        yield running


def test_admin_creates_a_key_whose_secret_is_shown_once_and_works(
    server: harness.RunningServer,
) -> None:
    with server.client() as admin:
        created = admin.post("/v1/keys", json={"name": "tenant-a"})
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["object"] == "api_key" and body["admin"] is False
        secret = body["value"]
        assert secret.startswith("bg-")
        again = admin.get(f"/v1/keys/{body['id']}").json()
        listed = admin.get("/v1/keys").json()
    assert "value" not in again and again["redacted_value"] == f"{secret[:10]}…"
    assert secret not in str(listed) and body["id"] in [k["id"] for k in listed["data"]]
    with server.client(secret) as tenant:
        assert tenant.get("/v1/batches").status_code == 200


def test_an_ordinary_key_gets_403_on_every_key_route(server: harness.RunningServer) -> None:
    ordinary = server.new_key("tenant")
    with server.client(ordinary) as client:
        responses = [
            client.post("/v1/keys", json={"name": "sneaky"}),
            client.get("/v1/keys"),
            client.get("/v1/keys/key_whatever"),
            client.delete("/v1/keys/key_whatever"),
        ]
    assert [r.status_code for r in responses] == [403] * 4
    assert responses[0].json()["error"]["code"] == "insufficient_permissions"


def test_deleting_a_key_revokes_it(server: harness.RunningServer) -> None:
    with server.client() as admin:
        created = admin.post("/v1/keys", json={"name": "short-lived"}).json()
        deleted = admin.delete(f"/v1/keys/{created['id']}")
        assert deleted.json() == {"object": "api_key.deleted", "id": created["id"], "deleted": True}
        assert admin.get(f"/v1/keys/{created['id']}").json()["revoked_at"] is not None
    with server.client(created["value"]) as revoked:
        response = revoked.get("/v1/batches")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_an_expired_key_gets_401_naming_the_expiry(server: harness.RunningServer) -> None:
    with server.client(server.expired_key()) as client:
        response = client.get("/v1/batches")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired_api_key"
    assert "expired at" in response.json()["error"]["message"]


def test_a_key_created_with_an_expiry_works_until_then(server: harness.RunningServer) -> None:
    expires_at = int(time.time()) + 3600
    with server.client() as admin:
        created = admin.post("/v1/keys", json={"name": "t", "expires_at": expires_at}).json()
    assert created["expires_at"] == expires_at
    with server.client(created["value"]) as client:
        assert client.get("/v1/batches").status_code == 200


def test_an_expiry_in_the_past_is_refused(server: harness.RunningServer) -> None:
    with server.client() as admin:
        response = admin.post("/v1/keys", json={"name": "t", "expires_at": 1})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expires_at"


def test_an_admin_key_can_create_another_admin_key(server: harness.RunningServer) -> None:
    with server.client() as admin:
        created = admin.post("/v1/keys", json={"name": "ops", "admin": True}).json()
    with server.client(created["value"]) as second_admin:
        assert second_admin.get("/v1/keys").status_code == 200


def test_the_last_active_admin_key_cannot_be_revoked(server: harness.RunningServer) -> None:
    with server.client() as admin:
        me = next(k for k in admin.get("/v1/keys").json()["data"] if k["admin"])
        response = admin.delete(f"/v1/keys/{me['id']}")
        assert response.status_code == 409
        assert admin.get("/v1/keys").status_code == 200


def test_unknown_key_id_is_404(server: harness.RunningServer) -> None:
    with server.client() as admin:
        assert admin.get("/v1/keys/key_000000000000").status_code == 404
        assert admin.delete("/v1/keys/key_000000000000").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "nul\u0000name"},
        {"name": "q", "quotas": {"max_requests_per_batch": 2**70}},
        # One past the bounds the CLI and the config share (domain/keys.py).
        {"name": "q", "quotas": {"max_active_batches": key_model.MAX_QUOTA_COUNT + 1}},
        {"name": "q", "quotas": {"max_file_bytes": key_model.MAX_QUOTA_BYTES + 1}},
        {"name": "q", "quotas": {"max_enqueued_tokens": {"m": key_model.MAX_QUOTA_TOKENS + 1}}},
        {"name": "q", "expires_at": 2**70},
    ],
)
def test_values_the_store_cannot_keep_are_400_not_500(
    server: harness.RunningServer, body: dict[str, object]
) -> None:
    with server.client() as admin:
        assert admin.post("/v1/keys", json=body).status_code == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "q", "admin": "yes"}, "admin"),
        ({"name": "q", "admin": 1}, "admin"),
        ({"name": "q", "admin": "true"}, "admin"),
        ({"name": "q", "expires_at": str(int(time.time()) + 3600)}, "expires_at"),
        ({"name": "q", "quotas": {"max_active_batches": "5"}}, "quotas.max_active_batches"),
    ],
)
def test_values_of_the_wrong_json_type_are_400_not_coerced(
    server: harness.RunningServer, body: dict[str, object], param: str
) -> None:
    """``"admin": "yes"`` must not make an admin key: JSON types are strict."""
    with server.client() as admin:
        response = admin.post("/v1/keys", json=body)
        names = [key["name"] for key in admin.get("/v1/keys").json()["data"]]
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert "q" not in names
