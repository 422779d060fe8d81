"""Dashboard sessions in a cookie, and the CSRF checks of its forms.

The session cookie is HttpOnly (no script reads it), SameSite=Strict (no
other site's page can make the browser send it), Secure when the page was
served over https, and scoped to ``/ui``. Every state-changing form carries a
token bound to the session and checked here; the login form, which has no
session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Annotated

import fastapi

from batchgate.api.deps import Services, ServicesDep, client_address
from batchgate.domain import errors
from batchgate.services import sessions

SESSION_COOKIE = "bg_session"
LOGIN_CSRF_COOKIE = "bg_login_csrf"
PATH = "/ui"


class LoginRequired(Exception):
    """No live session: the dashboard sends the browser to the login page."""


class CsrfRejected(Exception):
    """A state-changing form without the token of the caller's session."""


def current_session(request: fastapi.Request, services: ServicesDep) -> sessions.Session:
    """The caller's live session, within its key's API rate limit (the same
    bucket as the key's API calls). A cookie that names no live session is a
    failed authentication, limited per client address as the API's are."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    session = services.sessions.resolve(token)
    if session is None:
        services.rate_limiter.failed(client_address(request))
        raise LoginRequired
    services.rate_limiter.check(session.key.id)
    return session


SessionDep = Annotated[sessions.Session, fastapi.Depends(current_session)]


def optional_session(request: fastapi.Request, services: Services) -> sessions.Session | None:
    """The live session, if any, for pages anyone may see (the login form,
    error pages): a dead cookie counts as a failed authentication, and one
    from a client past that limit is not looked up at all."""
    token = request.cookies.get(SESSION_COOKIE)
    client = client_address(request)
    if not token or services.rate_limiter.client_wait(client) is not None:
        return None
    session = services.sessions.resolve(token)
    if session is None:
        # Counted, never refused here: these pages answer every client (the
        # check above left this one a failure to spend).
        with contextlib.suppress(errors.RateLimited):
            services.rate_limiter.failed(client)
    return session


def check_csrf(session: sessions.Session, token: str | None) -> None:
    if not sessions.same_token(session.csrf_token, token):
        raise CsrfRejected


def _set(
    request: fastapi.Request,
    response: fastapi.Response,
    name: str,
    value: str,
    max_age: int | None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def start_session(
    request: fastapi.Request, response: fastapi.Response, token: str, max_age: float
) -> None:
    _set(request, response, SESSION_COOKIE, token, int(max_age))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PATH)


def end_session(response: fastapi.Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PATH, httponly=True, samesite="strict")


def login_csrf(request: fastapi.Request) -> str:
    """The login form's token: the one already in the browser's cookie, or a
    new one (set on the response by :func:`remember_login_csrf`)."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def remember_login_csrf(request: fastapi.Request, response: fastapi.Response, token: str) -> None:
    _set(request, response, LOGIN_CSRF_COOKIE, token, None)


def check_login_csrf(request: fastapi.Request, token: str | None) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not sessions.same_token(expected, token):
        raise CsrfRejected
