"""The authorization walk: every route with an object id (and every admin
route), tried with the owner, a second key, a revoked key, an expired key,
and an ordinary key where an admin is needed. Dashboard routes (``/ui``) are
tried the same way with login sessions: the owner's, a second key's, one
whose key was revoked or expired after logging in, and none at all.

ROUTES is data: a route added later gets one row, and
``test_every_route_with_an_id_is_in_the_table`` (which walks the app's own
routes, not the OpenAPI document the dashboard is left out of) fails until
it has one.
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import routing

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
    session: bool = False  # a dashboard route: called with a login session, not a key


# Routes that change or delete their object come after those that read it
# (the walk runs in this order, and the owner goes last on each route).
ROUTES = [
    Route("GET", "/v1/batches/{batch_id}", "batch", 200),
    Route("GET", "/v1/batches/{batch_id}/results", "batch", 200),
    Route("GET", "/v1/batches/{batch_id}/errors", "batch", 200),
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
    Route("GET", "/ui/batches/{batch_id}", "batch", 200, session=True),
    Route("GET", "/ui/batches/{batch_id}/errors", "batch", 200, session=True),
    Route("GET", "/ui/batches/{batch_id}/summary", "batch", 200, session=True),
    Route("GET", "/ui/batches/{batch_id}/jobs", "batch", 200, session=True),
    Route("GET", "/ui/batches/{batch_id}/results.jsonl", "batch", 200, session=True),
    # Ended: unchanged, and back to the batch page.
    Route("POST", "/ui/batches/{batch_id}/cancel", "batch", 303, session=True),
]


@dataclasses.dataclass(frozen=True)
class Session:
    """A dashboard login: its cookie, and the CSRF token its forms carry."""

    cookie: str
    csrf: str


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class World:
    server: harness.RunningServer
    owner: str  # an ordinary key owning one object of each kind
    second: str  # another ordinary key
    revoked: str
    expired: str
    objects: dict[str, str]  # kind -> id
    # owner, second, admin, and sessions whose key was revoked or expired later
    sessions: dict[str, Session]


def _request(custom_id: str) -> dict[str, Any]:
    params = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": params}


def _wait_anthropic_ended(server: harness.RunningServer, batch_id: str, key: str) -> None:
    with server.client(key) as client:
        harness.wait_until(
            lambda: (
                client.get(f"/v1/messages/batches/{batch_id}").json()["processing_status"]
                == "ended"
            ),
            60,
            f"batch {batch_id} to end",
        )


def _log_in(server: harness.RunningServer, api_key: str) -> Session:
    """Log in through the dashboard's form, as tests/api/test_dashboard.py does."""
    with server.http_client(base_url=server.base_url, timeout=30) as browser:
        form = browser.get("/ui/login")
        token = _CSRF.search(form.text)
        assert token, form.text
        response = browser.post(
            "/ui/login", data={"api_key": api_key, "csrf_token": token.group(1)}
        )
        assert response.status_code == 303, response.text
        page = browser.get("/ui/batches")
        csrf = _CSRF.search(page.text)
        assert csrf, page.text
        return Session(browser.cookies["bg_session"], csrf.group(1))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path: Path = tmp_path_factory.mktemp("walk")
    with FakeUpstream() as upstream:
        settings = harness.make_settings(
            tmp_path, {MODEL: harness.openai_model(MODEL, upstream.openai_base_url)}
        )
        # The walk fails to authenticate ~50 times from one address on purpose.
        settings.rate_limit = config.RateLimitSettings(failed_auth_per_second=0)
        with harness.serve(settings) as server:
            keys = KeyService(server.store)
            owner, second = server.new_key("owner"), server.new_key("second")
            revoked_record, revoked = keys.create("revoked")
            keys.revoke(revoked_record.id)
            spare, _ = keys.create("spare")
            sessions = {
                "owner": _log_in(server, owner),
                "second": _log_in(server, second),
                "admin": _log_in(server, server.api_key),
            }
            # Sessions that were good at login: one key is revoked, the other expires.
            later_revoked, secret = keys.create("revoked after login")
            sessions["revoked"] = _log_in(server, secret)
            keys.revoke(later_revoked.id)
            expires_at = time.time() + 5
            _record, secret = keys.create("expires after login", expires_at=expires_at)
            sessions["expired"] = _log_in(server, secret)
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
            with server.openai(owner) as sdk:
                objects["file"] = sdk.files.create(
                    file=("in.jsonl", io.BytesIO(b"{}\n")), purpose="batch"
                ).id
            server.wait_ended(objects["batch"], api_key=owner)
            _wait_anthropic_ended(server, objects["msgbatch"], owner)
            # Past that key's expiry at once, rather than sleeping until it.
            with pytest.MonkeyPatch.context() as clock:
                harness.advance_clock(clock, max(0.0, expires_at - time.time() + 0.1))
                yield World(server, owner, second, revoked, server.expired_key(), objects, sessions)


def _path(world: World, route: Route) -> str:
    path = route.path
    if route.kind:
        path = path.replace(path[path.index("{") : path.index("}") + 1], world.objects[route.kind])
    return path


def _call(world: World, route: Route, key: str) -> httpx.Response:
    with world.server.client(key) as client:
        return client.request(route.method, _path(world, route), json=route.body)


def _browse(world: World, route: Route, session: Session | None) -> httpx.Response:
    """A dashboard route with ``session``'s cookie (and its form token on a
    POST, so a refusal is about who is asking, not a missing token)."""
    cookies = {"bg_session": session.cookie} if session else {}
    data = {"csrf_token": session.csrf} if session and route.method == "POST" else None
    server = world.server
    with server.http_client(base_url=server.base_url, timeout=30, cookies=cookies) as browser:
        return browser.request(route.method, _path(world, route), data=data)


def _outcome(response: httpx.Response) -> str:
    """The status, and where a redirect goes."""
    if response.is_redirect:
        return f"{response.status_code} {response.headers['location']}"
    return str(response.status_code)


API_ROUTES = [route for route in ROUTES if not route.session]
DASHBOARD_ROUTES = [route for route in ROUTES if route.session]


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: f"{r.method} {r.path}")
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


@pytest.mark.parametrize("route", DASHBOARD_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_dashboard_walk(world: World, route: Route) -> None:
    """No session, a dead one or another key's: the login page or a 404 page;
    the owner's session and an admin's (who sees every batch): the route."""
    login = "303 /ui/login"
    expected = {
        "none": login,
        "revoked": login,
        "expired": login,
        "second": "404",
        "admin": _outcome(_browse(world, route, world.sessions["owner"])),
    }
    got = {
        "none": _outcome(_browse(world, route, None)),
        "revoked": _outcome(_browse(world, route, world.sessions["revoked"])),
        "expired": _outcome(_browse(world, route, world.sessions["expired"])),
        "second": _outcome(_browse(world, route, world.sessions["second"])),
        "admin": _outcome(_browse(world, route, world.sessions["admin"])),
    }
    assert got == expected
    response = _browse(world, route, world.sessions["owner"])
    assert response.status_code == route.owner, response.text


def test_every_route_with_an_id_is_in_the_table() -> None:
    """Walks the app's routes, dashboard included (OpenAPI leaves it out)."""
    app = api_app.create_app(api_app.build_services(config.Settings(), MemoryJobStore()))
    served = {
        (method, context.path)
        for context in routing.iter_route_contexts(app.routes)
        if context.path and "{" in context.path
        for method in context.methods or {"ANY"}
    }
    assert ("GET", "/ui/batches/{batch_id}") in served  # the walk sees past the OpenAPI
    assert served <= {(route.method, route.path) for route in ROUTES}
