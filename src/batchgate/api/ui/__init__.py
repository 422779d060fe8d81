"""The web dashboard at ``/ui``: the caller's batches with live progress, a
batch's errors and results, the models' queues; log in with an API key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import fastapi
import fastapi.exceptions
import starlette.exceptions
from fastapi.staticfiles import StaticFiles

from batchgate.api import errors as api_errors
from batchgate.api.ui import auth, pages
from batchgate.domain import errors

_Handler = Callable[[fastapi.Request, Exception], Awaitable[fastapi.Response]]


def install(app: fastapi.FastAPI) -> None:
    app.include_router(pages.router)
    app.mount(
        "/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static"
    )

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: fastapi.Request, _exc: Exception) -> fastapi.Response:
        if request.headers.get("hx-request"):
            # A poll from a page whose session ended: htmx follows this header
            # with a full navigation instead of swapping the login form into
            # the table.
            return fastapi.Response(status_code=401, headers={"hx-redirect": "/ui/login"})
        return pages.see_other("/ui/login")

    @app.exception_handler(auth.CsrfRejected)
    async def _csrf_rejected(request: fastapi.Request, _exc: Exception) -> fastapi.Response:
        message = (
            "This form was not sent from this dashboard's own page (its security token is "
            "missing or out of date). Go back, reload the page and try again."
        )
        return pages.error_page(request, 403, message)

    # Errors on /ui pages are pages; everywhere else the dialect's envelope.
    for exc_class in (
        errors.BatchgateError,
        starlette.exceptions.HTTPException,
        fastapi.exceptions.RequestValidationError,
    ):
        _render_as_page_under_ui(app, exc_class)


def _render_as_page_under_ui(app: fastapi.FastAPI, exc_class: type[Exception]) -> None:
    api_handler: _Handler = app.exception_handlers[exc_class]  # type: ignore[assignment]

    async def handler(request: fastapi.Request, exc: Exception) -> fastapi.Response:
        if not request.url.path.startswith(auth.PATH + "/") or request.url.path.startswith(
            "/ui/static/"
        ):
            return await api_handler(request, exc)
        if isinstance(exc, errors.BatchgateError):
            return pages.error_page(
                request, api_errors.http_status(exc), exc.message, exc.retry_after
            )
        if isinstance(exc, starlette.exceptions.HTTPException):
            return pages.error_page(request, exc.status_code, "There is no such page.")
        return pages.error_page(request, 400, "This request was not understood.")

    app.add_exception_handler(exc_class, handler)
