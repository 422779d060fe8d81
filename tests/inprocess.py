"""Run the ASGI app inside the test process: no port, no uvicorn start.

The app's lifespan (its worker loop and sweeps) runs on one event loop in a
background thread, held by Starlette's ``TestClient``. Every request is
handed to that same loop through ``httpx.ASGITransport``, so routes and the
worker share their asyncio objects exactly as they do under uvicorn.

Sync clients (``httpx.Client``, the official ``openai`` and ``anthropic``
SDKs through ``http_client=``) get a loop transport; each client gets its
own, so an SDK closing its client closes nothing else. Newer ``anthropic``
SDKs take an ``httpx2`` client, so a transport is made for either package.

Where a test needs a real socket after all (``requests``, a browser), the
same app can also listen on a loopback port, on the same loop: see
:meth:`InProcessApp.socket_url`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import uvicorn
from anyio.from_thread import BlockingPortal
from starlette.testclient import TestClient
from starlette.types import ASGIApp

BASE_URL = "http://testserver"


class _ThroughTheLoop:
    """A sync transport (of ``http``, the httpx or httpx2 package) that runs
    each request through that package's ``ASGITransport`` on the app's loop."""

    def __init__(self, http: ModuleType, app: ASGIApp, portal: BlockingPortal) -> None:
        self._http = http
        self._portal = portal
        self._asgi = http.ASGITransport(app=app)

    def handle_request(self, request: Any) -> Any:
        # ASGITransport reads an async body; a request that was read holds its
        # body as bytes, which serve both ways.
        request.read()
        return self._portal.call(self._send, request)

    async def _send(self, request: Any) -> Any:
        response = await self._asgi.handle_async_request(request)
        body = await response.aread()
        return self._http.Response(
            response.status_code,
            headers=response.headers,
            stream=self._http.ByteStream(body),
            extensions=response.extensions,
        )


def _transport_class(http: ModuleType) -> type[_ThroughTheLoop]:
    return type("LoopTransport", (_ThroughTheLoop, http.BaseTransport), {})


def http_package_of(client_class: type) -> ModuleType:
    """httpx or httpx2, whichever ``client_class`` (an SDK's default
    client) is built on."""
    for base in client_class.__mro__:
        root = base.__module__.partition(".")[0]
        if root in ("httpx", "httpx2"):
            return importlib.import_module(root)
    return httpx


class InProcessApp:
    """An app whose lifespan is running; hands out clients that reach it."""

    def __init__(self, app: ASGIApp, portal: BlockingPortal) -> None:
        self.app = app
        self.portal = portal
        self._listener: uvicorn.Server | None = None
        self._listening: concurrent.futures.Future[None] | None = None
        self._transports: dict[str, type[_ThroughTheLoop]] = {}

    def transport(self, http: ModuleType = httpx) -> Any:
        """A new transport to the app for a client of ``http`` (httpx, httpx2)."""
        if http.__name__ not in self._transports:
            self._transports[http.__name__] = _transport_class(http)
        return self._transports[http.__name__](http, self.app, self.portal)

    def socket_url(self) -> str:
        """A loopback URL for the same app (and the same store and worker),
        opened on first use: for clients that cannot take a transport."""
        if self._listener is None:
            self._listener = uvicorn.Server(
                uvicorn.Config(
                    self.app,
                    host="127.0.0.1",
                    port=0,
                    log_level="warning",
                    lifespan="off",
                    # The app trusts proxy headers itself (api/proxy.py), as under serve.
                    proxy_headers=False,
                )
            )
            self._listening = self.portal.start_task_soon(self._listener.serve)
            deadline = time.monotonic() + 30
            while not self._listener.started:
                if self._listening.done() or time.monotonic() > deadline:
                    self._listening.result(timeout=0)
                    raise RuntimeError("the loopback listener did not start")
                time.sleep(0.01)
        port_number = self._listener.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port_number}"

    def close_socket(self) -> None:
        if self._listener is not None and self._listening is not None:
            self._listener.should_exit = True
            self._listening.result(timeout=30)
            self._listener = None


@contextlib.contextmanager
def running(app: ASGIApp) -> Iterator[InProcessApp]:
    """The app with its lifespan started; leaving shuts it down (which
    drains its worker, as SIGTERM does under uvicorn)."""
    with TestClient(app, base_url=BASE_URL) as lifespan_holder:
        portal = lifespan_holder.portal
        if portal is None:  # set by TestClient.__enter__
            raise RuntimeError("TestClient did not start its event loop")
        in_process = InProcessApp(app, portal)
        try:
            yield in_process
        finally:
            in_process.close_socket()
