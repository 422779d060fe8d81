"""A header-rewriting reverse proxy for tests, as nginx is set up by default:
a real HTTP server on 127.0.0.1 that forwards every request to a backend,
sending the backend's own address as ``Host`` and the address the client
used as ``X-Forwarded-Host`` (plus ``X-Forwarded-Proto`` and
``X-Forwarded-For``). It logs the method and path of each request it
forwards, so a test can tell which calls went through it."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

# Hop-by-hop and length headers: the proxy's own server sets these.
_NOT_FORWARDED = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host"}


class ReverseProxy:
    def __init__(self, backend_url: str) -> None:
        self.backend_url = backend_url.rstrip("/")
        self.url = ""  # set once listening
        self.log: list[tuple[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.log.append((scope["method"], scope["path"]))
        public = urllib.parse.urlsplit(self.url).netloc
        headers = [(k, v) for k, v in scope["headers"] if k not in _NOT_FORWARDED]
        headers += [
            (b"x-forwarded-host", public.encode()),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-for", scope["client"][0].encode()),
        ]
        target = self.backend_url + scope["raw_path"].decode()
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode()
        async with httpx.AsyncClient(timeout=60) as client:
            reply = await client.request(scope["method"], target, headers=headers, content=body)
        kept = [
            (k.encode(), v.encode())
            for k, v in reply.headers.items()
            if k.encode() not in _NOT_FORWARDED and k != "content-encoding"
        ]
        await send({"type": "http.response.start", "status": reply.status_code, "headers": kept})
        await send({"type": "http.response.body", "body": reply.content})


@contextlib.contextmanager
def reverse_proxy(backend_url: str) -> Iterator[ReverseProxy]:
    """A :class:`ReverseProxy` to ``backend_url`` on a free loopback port."""
    proxy = ReverseProxy(backend_url)
    server = uvicorn.Server(
        uvicorn.Config(proxy, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test proxy did not start")
        time.sleep(0.01)
    proxy.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.should_exit = True
        thread.join(timeout=30)
