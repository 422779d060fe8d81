"""Shared pieces: limits, the translation error, and typed accessors whose
errors name the path of the wrong value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` for Chat Completions requests that give no limit."""

REASONING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
"""Thinking budget (tokens) for each ``reasoning_effort``."""

_MIN_THINKING_BUDGET = 1024

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


class TranslationError(ValueError):
    """A body that cannot be translated. ``param`` is a dotted path to the
    offending field (``body.messages[2].content``), or None for the whole body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --------------------------------------------------------------------------
# Small typed accessors: every wrong type names its path.


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dict(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(f"expected an object, got {_type_name(value)}", param)
    return value


def _list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"expected an array, got {_type_name(value)}", param)
    return value


def _str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"expected a string, got {_type_name(value)}", param)
    return value


def _int(value: object, param: str) -> int:
    # bool is an int subclass in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranslationError(f"expected an integer, got {_type_name(value)}", param)
    return value


def _number(value: object, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(f"expected a number, got {_type_name(value)}", param)
    return float(value)


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise TranslationError(f"expected a boolean, got {_type_name(value)}", param)
    return value


def _only_keys(obj: Mapping[str, Any], allowed: Iterable[str], param: str) -> None:
    allowed_set = set(allowed)
    for key in obj:
        if key not in allowed_set:
            raise TranslationError(f"unrecognized field {key!r}", f"{param}.{key}")


def _required(obj: Mapping[str, Any], key: str, param: str) -> Any:
    if key not in obj or obj[key] is None:
        raise TranslationError(f"missing required field {key!r}", f"{param}.{key}")
    return obj[key]
