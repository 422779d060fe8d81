"""The authorization walk: every route with an object id (and every admin
route), tried with the owner, a second key, a revoked key, an expired key,
and an ordinary key where an admin is needed.

ROUTES is data: a route added later gets one row, and
``test_every_route_with_an_id_is_in_the_table`` fails until it has one.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from batchgate import config
from batchgate.api import app as api_app
from batchgate.services.keys import KeyService
from batchgate.testing.memory_store import MemoryJobStore
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = "fake-chat"


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {id} where the object's id goes
    kind: str  # the object the id names: batch, msgbatch, file, key, endpoint; "" for none
    owner: int  # the status the owner (or, on admin routes, an admin) gets
    admin: bool = False  # an admin key is needed (ordinary keys get 403)
    body: dict[str, Any] | None = None


# Routes that change or delete their object come after those that read it
# (the walk runs in this order, and the owner goes last on each route).
ROUTES = [
    Route("GET", "/v1/batches/{batch_id}", "batch", 200),
    Route("GET", "/v1/batches/{batch_id}/results", "batch", 200),
    Route("POST", "/v1/batches/{batch_id}/retry", "batch", 409),  # nothing failed
    Route("POST", "/v1/batches/{batch_id}/cancel", "batch", 200),  # ended: unchanged
    Route("GET", "/v1/messages/batches/{batch_id}", "msgbatch", 200),
    Route("GET", "/v1/messages/batches/{batch_id}/results", "msgbatch", 200),
    Route("POST", "/v1/messages/batches/{batch_id}/retry", "msgbatch", 409),
    Route("POST", "/v1/messages/batches/{batch_id}/cancel", "msgbatch", 200),
    Route("DELETE", "/v1/messages/batches/{batch_id}", "msgbatch", 200),
    Route("GET", "/v1/files/{file_id}", "file", 200),
    Route("GET", "/v1/files/{file_id}/content", "file", 200),
    Route("DELETE", "/v1/files/{file_id}", "file", 200),
    Route("GET", "/v1/webhook_endpoints/{endpoint_id}", "endpoint", 200),
    Route("GET", "/v1/webhook_endpoints/{endpoint_id}/deliveries", "endpoint", 200),
    Route("DELETE", "/v1/webhook_endpoints/{endpoint_id}", "endpoint", 200),
    Route("GET", "/v1/keys", "", 200, admin=True),
    Route("POST", "/v1/keys", "", 200, admin=True, body={"name": "walk"}),
    Route("GET", "/metrics", "", 200, admin=True),
    Route("GET", "/v1/keys/{key_id}", "key", 200, admin=True),
    Route("DELETE", "/v1/keys/{key_id}", "key", 200, admin=True),
]


@dataclasses.dataclass
class World:
    server: harness.RunningServer
    owner: str  # an ordinary key owning one object of each kind
    second: str  # another ordinary key
    revoked: str
    expired: str
    objects: dict[str, str]  # kind -> id


def _request(custom_id: str) -> dict[str, Any]:
    params = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": params}


def _wait_anthropic_ended(server: harness.RunningServer, batch_id: str, key: str) -> None:
    deadline = time.monotonic() + 60
    with server.client(key) as client:
        while client.get(f"/v1/messages/batches/{batch_id}").json()["processing_status"] != "ended":
            assert time.monotonic() < deadline, f"{batch_id} did not end"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path: Path = tmp_path_factory.mktemp("walk")
    with FakeUpstream() as upstream:
        settings = harness.make_settings(
            tmp_path, {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
        )
        with harness.serve(settings) as server:
            keys = KeyService(server.store)
            owner, second = server.new_key("owner"), server.new_key("second")
            revoked_record, revoked = keys.create("revoked")
            keys.revoke(revoked_record.id)
            spare, _ = keys.create("spare")
            objects = {"key": spare.id}
            with server.client(owner) as client:
                native = client.post("/v1/batches", json={"requests": [_request("a")]}).json()
                objects["batch"] = native["id"]
                created = client.post("/v1/messages/batches", json={"requests": [_request("a")]})
                objects["msgbatch"] = created.json()["id"]
                endpoint = client.post(
                    "/v1/webhook_endpoints", json={"url": "https://example.com/hook"}
                )
                assert endpoint.status_code == 200, endpoint.text
                objects["endpoint"] = endpoint.json()["id"]
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key=owner) as sdk:
                objects["file"] = sdk.files.create(
                    file=("in.jsonl", io.BytesIO(b"{}\n")), purpose="batch"
                ).id
            server.wait_ended(objects["batch"], api_key=owner)
            _wait_anthropic_ended(server, objects["msgbatch"], owner)
            yield World(server, owner, second, revoked, server.expired_key(), objects)


def _call(world: World, route: Route, key: str) -> httpx.Response:
    path = route.path
    if route.kind:
        path = path.replace(path[path.index("{") : path.index("}") + 1], world.objects[route.kind])
    with world.server.client(key) as client:
        return client.request(route.method, path, json=route.body)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_walk(world: World, route: Route) -> None:
    """Non-owners first (so a delete by the owner comes last), each getting
    exactly the refusal its standing earns."""
    expected = {"revoked": 401, "expired": 401, "second": 403 if route.admin else 404}
    if route.admin:
        expected["ordinary"] = 403
    got = {
        "revoked": _call(world, route, world.revoked).status_code,
        "expired": _call(world, route, world.expired).status_code,
        "second": _call(world, route, world.second).status_code,
    }
    if route.admin:
        got["ordinary"] = _call(world, route, world.owner).status_code
    assert got == expected
    owner_key = world.server.api_key if route.admin else world.owner
    response = _call(world, route, owner_key)
    assert response.status_code == route.owner, response.text


def test_every_route_with_an_id_is_in_the_table() -> None:
    app = api_app.create_app(api_app.build_services(config.Settings(), MemoryJobStore()))
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if "{" in path
    }
    assert served <= {(route.method, route.path) for route in ROUTES}
