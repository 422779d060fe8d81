"""The request edge (issue 16): no body byte is read before the caller's key
(or dashboard session) is checked, bodies are read under a cap while they
stream in, and a client that goes away mid-body is one log line.

The app runs in-process behind an ASGI ``receive`` wrapper that counts the
body bytes the app pulls, so "not read" is measured, not inferred from
timing or memory."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest

from batchgate import composition, config
from batchgate.api import deps
from batchgate.services.keys import KeyService
from batchgate.store import port
from tests import harness

MB = 1024 * 1024
_CHUNK = b"x" * (64 * 1024)


class CountingApp:
    """The app, with every body byte it receives counted."""

    def __init__(self, app: deps.BatchgateApp) -> None:
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            self.body_bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[port.JobStore]:
    settings = harness.make_settings(tmp_path, {})
    job_store = composition.open_store(settings)
    KeyService(job_store).register("admin", harness.API_KEY)
    yield job_store
    job_store.close()


@pytest.fixture
def counting(tmp_path: Path, store: port.JobStore) -> CountingApp:
    settings = harness.make_settings(tmp_path, {})
    return CountingApp(composition.create_server_app(settings, store, with_worker=False))


def client(app: CountingApp, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


async def sixty_mb() -> AsyncIterator[bytes]:
    """A 60 MB body, chunked (no Content-Length), made as it is sent."""
    for _ in range(60 * MB // len(_CHUNK)):
        yield _CHUNK


# Every route that takes a body, with the content type its clients send.
BODY_ROUTES = [
    ("/v1/batches", "application/json"),
    ("/v1/batches/batch_abc/retry", "application/json"),
    ("/v1/batches/batch_abc/cancel", "application/json"),
    ("/v1/messages/batches", "application/json"),
    ("/v1/messages/batches/msgbatch_abc/retry", "application/json"),
    ("/v1/messages/batches/msgbatch_abc/cancel", "application/json"),
    ("/v1/webhook_endpoints", "application/json"),
    ("/v1/keys", "application/json"),
    ("/v1/files", "multipart/form-data; boundary=xyz"),
]


@pytest.mark.parametrize(("path", "content_type"), BODY_ROUTES)
async def test_a_keyless_60_mb_body_gets_401_without_being_read(
    counting: CountingApp, path: str, content_type: str
) -> None:
    async with client(counting, **{"content-type": content_type}) as http:
        response = await http.post(path, content=sixty_mb())
    assert response.status_code == 401, response.text
    assert counting.body_bytes == 0


@pytest.mark.parametrize(("path", "content_type"), BODY_ROUTES)
async def test_a_wrong_key_with_a_declared_60_mb_body_gets_401_without_being_read(
    counting: CountingApp, path: str, content_type: str
) -> None:
    headers = {"content-type": content_type, "authorization": "Bearer bg-wrong-0123456789"}
    async with client(counting, **headers) as http:
        response = await http.post(path, content=b"x" * (60 * MB))
    assert response.status_code == 401, response.text
    assert counting.body_bytes == 0


async def test_an_ordinary_key_gets_403_on_the_keys_api_without_its_body_read(
    counting: CountingApp, store: port.JobStore
) -> None:
    _record, ordinary = KeyService(store).create("tenant")
    headers = {"content-type": "application/json", "authorization": f"Bearer {ordinary}"}
    async with client(counting, **headers) as http:
        response = await http.post("/v1/keys", content=sixty_mb())
    assert response.status_code == 403
    assert counting.body_bytes == 0


@pytest.mark.parametrize("path", ["/ui/logout", "/ui/batches/batch_abc/cancel"])
async def test_dashboard_forms_without_a_session_are_not_read(
    counting: CountingApp, path: str
) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    async with client(counting, **headers) as http:
        response = await http.post(path, content=sixty_mb())
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    assert counting.body_bytes == 0


async def test_the_login_form_reads_at_most_its_small_cap(counting: CountingApp) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    async with client(counting, **headers) as http:
        response = await http.post("/ui/login", content=sixty_mb())
    assert response.status_code == 413
    assert counting.body_bytes <= 64 * 1024 + len(_CHUNK)


async def test_a_json_body_past_the_cap_is_refused_while_it_streams(
    counting: CountingApp,
) -> None:
    """A chunked body (no Content-Length to refuse up front) is cut off as
    soon as it passes max_body_bytes, not read to its end."""
    headers = {"content-type": "application/json", "authorization": f"Bearer {harness.API_KEY}"}
    limit = config.LimitsSettings().max_body_bytes
    async with client(counting, **headers) as http:
        response = await http.post("/v1/batches", content=sixty_mb())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert counting.body_bytes <= limit + len(_CHUNK)


def test_the_default_json_body_cap_is_32_mib() -> None:
    """Room for one request at the Messages API's own 32 MB cap; larger
    batches go up as a file, which streams to disk."""
    assert config.LimitsSettings().max_body_bytes == 32 * MB


async def test_a_client_that_disconnects_mid_body_is_one_log_line(
    counting: CountingApp, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"requests": [', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/batches",
        "raw_path": b"/v1/batches",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {harness.API_KEY}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    caplog.set_level(logging.INFO)
    await counting(scope, receive, send)  # no exception escapes the app
    lines = [r for r in caplog.records if "disconnect" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert lines[0].exc_info is None
    assert "POST /v1/batches" in lines[0].getMessage()


def test_no_route_takes_a_typed_body(counting: CountingApp) -> None:
    """FastAPI reads a typed body (a pydantic model, Form or File parameter)
    before any dependency runs, the key check included: every body must be
    a dependency on the key instead (api/common.py, api/ui/forms.py)."""
    routes = list(_api_routes(counting.app.routes))
    assert len(routes) > 30, "the walk missed the routers"
    typed = [f"{sorted(r.methods)} {r.path}" for r in routes if r.body_field is not None]
    assert typed == []


def _api_routes(routes: Any) -> Iterator[fastapi.routing.APIRoute]:
    """Every APIRoute, through included routers (FastAPI keeps each under
    its ``original_router``) and mounts."""
    for route in routes:
        if isinstance(route, fastapi.routing.APIRoute):
            yield route
            continue
        inner = getattr(route, "original_router", route)
        yield from _api_routes(getattr(inner, "routes", []))


def test_a_disconnect_mid_body_under_uvicorn_is_one_line_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[logging.LogRecord] = []
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's own, not propagated
    collector = logging.Handler(logging.ERROR)
    collector.emit = errors.append  # type: ignore[method-assign]
    uvicorn_log.addHandler(collector)
    caplog.set_level(logging.INFO, logger="batchgate.api")
    try:
        settings = harness.make_settings(tmp_path, {})
        with harness.serve_socket(settings, with_worker=False) as server:
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(
                    b"POST /v1/batches HTTP/1.1\r\nHost: t\r\n"
                    + f"Authorization: Bearer {harness.API_KEY}\r\n".encode()
                    + b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
                    + b'{"requests": ['
                    + b" " * 100_000
                )
            harness.wait_until(
                lambda: [r for r in caplog.records if "disconnected" in r.getMessage()],
                what="the disconnect's log line",
            )
    finally:
        uvicorn_log.removeHandler(collector)
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert errors == []


# -- /v1/files: the form around the file --------------------------------------
def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


async def _field_flood(count: int, size: int) -> AsyncIterator[bytes]:
    """``count`` form fields of ``size`` bytes each, chunked, made as sent."""
    value = b"v" * size
    for n in range(count):
        yield _part(f"field{n}", value)


UPLOAD_HEADERS = {
    "content-type": "multipart/form-data; boundary=b",
    "authorization": f"Bearer {harness.API_KEY}",
}


@pytest.mark.parametrize(("count", "size"), [(7000, 60_000), (1000, 10)])
async def test_a_flood_of_form_fields_is_refused_before_it_is_held(
    counting: CountingApp, count: int, size: int
) -> None:
    """7,000 fields of 60 KB (420 MB, chunked: no Content-Length to refuse up
    front) or 1,000 tiny ones: a 400 in OpenAI's envelope once the fields
    pass their caps, with the rest of the body never read."""
    async with client(counting, **UPLOAD_HEADERS) as http:
        response = await http.post("/v1/files", content=_field_flood(count, size))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "fields" in error["message"]
    assert counting.body_bytes <= 256 * 1024


async def test_an_upload_with_its_fields_in_bounds_is_stored(counting: CountingApp) -> None:
    body = (
        _part("purpose", b"batch")
        + _part("file", b'{"custom_id": "a"}\n', filename="in.jsonl")
        + b"--b--\r\n"
    )
    async with client(counting, **UPLOAD_HEADERS) as http:
        response = await http.post("/v1/files", content=body)
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(b'{"custom_id": "a"}\n')


@pytest.fixture
def served(tmp_path: Path, store_url: str) -> Iterator[harness.RunningServer]:
    settings = harness.make_settings(tmp_path, {}, database_url=store_url)
    with harness.serve(settings, with_worker=False) as running:
        yield running


def _stored_files(server: harness.RunningServer) -> tuple[int, int]:
    import sqlalchemy as sa

    from batchgate.store import tables

    engine = server.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        files = conn.execute(sa.select(sa.func.count()).select_from(tables.files)).scalar_one()
        chunks = conn.execute(
            sa.select(sa.func.count()).select_from(tables.file_chunks)
        ).scalar_one()
    return files, chunks


def test_a_truncated_upload_is_400_and_stores_nothing(served: harness.RunningServer) -> None:
    """A body cut off after a line break, before its closing boundary, was
    kept as a complete file of fewer lines; now nothing is kept."""
    lines = b'{"custom_id": "r1"}\n{"custom_id": "r2"}\n'
    head = _part("purpose", b"batch") + _part("file", lines, filename="in.jsonl")
    cut = head[: head.index(b"r2") - 2]  # ends right after the first line's \n
    headers = {"content-type": "multipart/form-data; boundary=b"}
    with served.client(**headers) as http:
        truncated = http.post("/v1/files", content=cut)
        listed = http.get("/v1/files").json()["data"]
        complete = http.post("/v1/files", content=head + b"--b--\r\n")
    assert truncated.status_code == 400, truncated.text
    assert "closing boundary" in truncated.json()["error"]["message"]
    assert listed == []
    assert complete.status_code == 200  # the same body, whole, is stored
    assert _stored_files(served) == (1, 1)


@pytest.mark.parametrize(
    "path", ["/ui/static/ui.css", "/ui/static/htmx-2.0.11.min.js", "/health", "/v1/batches"]
)
async def test_every_response_says_nosniff(counting: CountingApp, path: str) -> None:
    """Static files, the API's answers and its errors (the last is a 401)."""
    async with client(counting) as http:
        response = await http.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


# -- dashboard: logging out ------------------------------------------------------
def test_logging_out_ends_the_session_for_a_copied_cookie_too(
    served: harness.RunningServer,
) -> None:
    def csrf(page: httpx.Response) -> str:
        return page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]

    with httpx.Client(base_url=served.url, timeout=30) as browser:
        login = browser.get("/ui/login")
        browser.post("/ui/login", data={"api_key": served.api_key, "csrf_token": csrf(login)})
        cookie = browser.cookies["bg_session"]
        page = browser.get("/ui/batches")
        assert page.status_code == 200
        assert browser.post("/ui/logout", data={"csrf_token": csrf(page)}).status_code == 303
    with httpx.Client(base_url=served.url, timeout=30, cookies={"bg_session": cookie}) as copy:
        after = copy.get("/ui/batches")
    assert after.status_code == 303
    assert after.headers["location"] == "/ui/login"
