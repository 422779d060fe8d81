"""The dashboard's form posts, read by hand rather than as FastAPI ``Form``
parameters: FastAPI reads a typed body before any dependency runs, so a
client without a session could make the server parse a form of up to a
thousand 1 MB fields (Starlette's defaults) before being sent to the login
page. Here a session is checked first (except on the login form, which is
how one gets a session), and the body is capped at a size no real form of
the dashboard comes near.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

import fastapi

from batchgate.api import common
from batchgate.api.ui import auth
from batchgate.domain import errors
from batchgate.services import sessions

# The largest form is the login: an API key and a CSRF token, well under 1 KiB.
MAX_FORM_BYTES = 16 * 1024
_MAX_FIELDS = 8

Fields = dict[str, str]


async def read_form(request: fastapi.Request) -> Fields:
    """The urlencoded form's fields (the first value of each), or a 413/400."""
    too_large = errors.PayloadTooLarge(
        f"this form is larger than {MAX_FORM_BYTES:,} bytes", code="request_too_large"
    )
    raw = await common.read_capped(request, MAX_FORM_BYTES, too_large)
    try:
        parsed = urllib.parse.parse_qs(
            raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=_MAX_FIELDS
        )
    except ValueError:
        raise errors.InvalidRequest("this form has too many fields") from None
    return {name: values[0] for name, values in parsed.items()}


async def session_form(request: fastapi.Request, _session: auth.SessionDep) -> Fields:
    """A form posted from a page of a live session, read once it is known live."""
    return await read_form(request)


LoginForm = Annotated[Fields, fastapi.Depends(read_form)]
SessionForm = Annotated[Fields, fastapi.Depends(session_form)]


def check_csrf(session: sessions.Session, form: Fields) -> None:
    auth.check_csrf(session, form.get("csrf_token"))
