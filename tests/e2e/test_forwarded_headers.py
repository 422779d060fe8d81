"""What uvicorn itself adds in front of the app: it trusts X-Forwarded-Proto
from 127.0.0.1 (as from a TLS proxy there), so this runs on a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import harness
from tests.api.test_dashboard import browser, csrf_of


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.RunningServer]:
    with harness.serve_socket(harness.make_settings(tmp_path, {}), with_worker=False) as running:
        yield running


def test_the_session_cookie_is_secure_when_the_page_is_served_over_https(
    server: harness.RunningServer,
) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as from a TLS proxy there.
    with browser(server, **{"x-forwarded-proto": "https"}) as client:
        form = client.get("/ui/login")
        # The login form's own cookie is Secure too: hand it back over this
        # plain-http test connection as the browser would over https.
        client.cookies.set("bg_login_csrf", form.cookies["bg_login_csrf"])
        response = client.post(
            "/ui/login", data={"api_key": server.api_key, "csrf_token": csrf_of(form)}
        )
    cookie = next(
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith("bg_session=")
    )
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}
