"""A webhook URL as httpx will send it.

The SSRF guard must judge the host the client will connect to, and a URL
the client cannot send must be refused when it is registered, not found at
delivery: the standard library's ``urlsplit`` and httpx's parser disagree
on some inputs (``http://a b/`` is host ``a b`` to one and ``a%20b`` to the
other; a tab or NUL in the path is fine to one and an ``InvalidURL`` to the
other). So registration and delivery both parse with httpx, here.
"""

from __future__ import annotations

import re
import urllib.parse

import httpx

from batchgate.domain import errors

# What a host may be once httpx has parsed it (IDNA names are ASCII by
# then): letters, digits, dots, hyphens, underscores, or an IPv6 address.
_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")


def parse(url: str) -> httpx.URL:
    """The URL as httpx parses it; InvalidRequest (param ``url``) for one it
    cannot send or whose host is not a plain name or address."""
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidRequest(f"url is not a valid URL: {exc}", param="url") from None
    if raw_host and not _HOST.match(raw_host):
        raise errors.InvalidRequest(
            f"url has a host that is not a valid name or address: {raw_host!r:.80}", param="url"
        )
    if (urllib.parse.urlsplit(url).hostname or "") != parsed.host.lower():
        # The guard judges one parser's host; the other's is the one called.
        raise errors.InvalidRequest("url is ambiguous: its host parses two ways", param="url")
    return parsed


def host_and_port(url: httpx.URL) -> tuple[str, int]:
    """The host to resolve (IDNA-encoded, no brackets) and the port to connect to."""
    return url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80)
