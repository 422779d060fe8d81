"""Turn pydantic error locations into the paths users see: ``requests[2].params.max_tokens``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pydantic

from batchgate.domain import errors

_Body = TypeVar("_Body", bound=pydantic.BaseModel)

# Union members appear in pydantic's locations ("str", "list[...]", class
# names); they say which alternative failed, not where the input is wrong.
_TYPE_LABELS = {"str", "int", "float", "bool", "none", "list", "dict"}


def format_loc(loc: Sequence[int | str], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part in _TYPE_LABELS or "[" in part or part[:1].isupper() or "-" in part:
            continue
        path += f".{part}" if path else part
    return path


def first_error(exc: pydantic.ValidationError, prefix: str = "") -> tuple[str, str]:
    """(path, message) of the most specific error: the one deepest in the input."""
    errors: list[Any] = exc.errors(include_url=False)
    best = max(errors, key=lambda err: len(format_loc(err["loc"])))
    path = format_loc(best["loc"], prefix)
    message = best["msg"]
    if best["type"] == "json_invalid":
        return "", f"body is not valid JSON: {best.get('ctx', {}).get('error', message)}"
    return path, f"{path}: {message}" if path else message


def parse_body(model: type[_Body], body: bytes) -> _Body:
    """Validate a JSON request body as ``model``; a failure is an
    InvalidRequest naming the path of the offending value."""
    try:
        return model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        param, message = first_error(exc)
        raise errors.InvalidRequest(message, param=param or None) from None
