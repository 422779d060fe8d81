"""Requests that came through a reverse proxy: the address the client used.

Every absolute URL batchgate builds (an Anthropic batch's ``results_url``, the
dashboard's links) comes from the request's scheme and ``Host``. Behind a
proxy those are the proxy's view (nginx sends its upstream's name as
``Host`` by default), so a client would be sent to an internal address.

:class:`ForwardedHeaders` is the app's one place that trusts a proxy's word,
and only from the peers ``[server] forwarded_allow_ips`` names (uvicorn's
setting, read the same way: addresses, networks, ``*``). From such a peer:

* the scheme and client address are uvicorn's own
  :class:`~uvicorn.middleware.proxy_headers.ProxyHeadersMiddleware`'s
  (``X-Forwarded-Proto``, ``X-Forwarded-For``);
* the host becomes ``X-Forwarded-Host`` (with ``X-Forwarded-Port`` when the
  host names none), else the ``host`` of a simple RFC 7239 ``Forwarded``
  header, whose ``proto`` also sets the scheme when ``X-Forwarded-Proto`` is
  absent. Of a comma-separated list, the last value counts: the one the
  trusted peer itself wrote (werkzeug's ProxyFix default, one hop).

A value that is not a plain ``host[:port]`` is ignored, as are all these
headers from any other peer. The app runs with uvicorn's own proxy handling
off (``serve`` does that), because uvicorn's would replace the peer address
with the forwarded client's before this middleware could check the peer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware import proxy_headers

# A DNS name or IPv4 address, or a bracketed IPv6 address, and an optional port.
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$"
)
# One RFC 7239 pair: token=token or token="quoted" (no escapes: "simple").
_PAIR = re.compile(r'^\s*([A-Za-z]+)\s*=\s*("[^"\\]*"|[^";,\s]+)\s*$')
_PROXY_HEADERS = (b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-proto", b"forwarded")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class ForwardedHeaders:
    """ASGI middleware: the scheme, host and client a trusted proxy reports."""

    def __init__(self, app: ASGIApp, trusted_hosts: str) -> None:
        # uvicorn types ASGI apps with its own TypedDicts, Starlette with
        # plain mappings; the protocol is the same.
        uvicorn_proxy = proxy_headers.ProxyHeadersMiddleware(cast(Any, app), trusted_hosts)
        self._trusted = uvicorn_proxy.trusted_hosts
        self._proxy = cast(ASGIApp, uvicorn_proxy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and peer[0] in self._trusted:
                scope = _forwarded_host(scope)
        await self._proxy(scope, receive, send)


def _forwarded_host(scope: Scope) -> Scope:
    """``scope`` with the forwarded host (and a Forwarded ``proto``) applied."""
    headers = _last_values(scope["headers"])
    forwarded = _simple_forwarded(headers.get(b"forwarded", ""))
    host = headers.get(b"x-forwarded-host") or forwarded.get("host")
    proto = headers.get(b"x-forwarded-proto") or forwarded.get("proto") or scope["scheme"]
    changes: Scope = {}
    if b"x-forwarded-proto" not in headers and forwarded.get("proto") in _DEFAULT_PORTS:
        changes["scheme"] = forwarded["proto"]
    if host and _HOST.match(host):
        port = headers.get(b"x-forwarded-port", "")
        if port.isdigit() and not _has_port(host) and port != _DEFAULT_PORTS.get(proto):
            host = f"{host}:{port}"
        rest = [(name, value) for name, value in scope["headers"] if name != b"host"]
        changes["headers"] = [(b"host", host.encode("latin-1")), *rest]
    return {**scope, **changes} if changes else scope


def _last_values(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The proxy headers that matter, each as the last value of its list."""
    values: dict[bytes, str] = {}
    for name, value in raw:
        if name in _PROXY_HEADERS:
            text = value.decode("latin-1")
            # Forwarded's quoted values may hold commas: it splits its own.
            values[name] = text if name == b"forwarded" else text.rsplit(",", 1)[-1].strip()
    return values


def _simple_forwarded(value: str) -> dict[str, str]:
    """The pairs of a ``Forwarded`` header's last element, lower-cased keys;
    empty if that element is not simple (a quoted comma, escapes, junk)."""
    if not value:
        return {}
    element = value.rsplit(",", 1)[-1]
    pairs: dict[str, str] = {}
    for item in element.split(";"):
        match = _PAIR.match(item)
        if match is None:
            return {}
        pairs[match.group(1).lower()] = match.group(2).strip('"')
    return pairs


def _has_port(host: str) -> bool:
    return re.search(r":\d+$", host) is not None and not host.endswith("]")
