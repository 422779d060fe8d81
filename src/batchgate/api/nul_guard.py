"""Refuse U+0000 in a request's URL and cookies before any route runs.

PostgreSQL's text types cannot hold NUL, and psycopg raises on one in a bound
parameter: a NUL that reached a query was a 500 there (and a plain miss on
SQLite). Every id in a path, every query parameter and every cookie value is
checked here once, as an app-wide dependency, so the same request gets the
same answer on both stores and no route can forget. JSON bodies are checked
by their pydantic types (``dialects.input_limits.NoNul``).
"""

from __future__ import annotations

import fastapi

from batchgate.domain import errors

NUL = "\x00"


def refuse_nul(request: fastapi.Request) -> None:
    """An id with a NUL names nothing (404, as an unknown id would); a query
    parameter or cookie with one is a malformed request (400)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise errors.NotFound(f"no object with this {name} (it holds a NUL)", param=name)
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise errors.InvalidRequest(
                f"query parameter {name.replace(NUL, '?')!r} holds a NUL character (U+0000)",
                param=name.replace(NUL, "?"),
            )
    for name, value in request.cookies.items():
        if NUL in name or NUL in value:
            raise errors.InvalidRequest(
                f"cookie {name.replace(NUL, '?')!r} holds a NUL character (U+0000)"
            )
