"""Shared pieces: limits, the translation error, and typed accessors whose
errors name the path of the wrong value."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` for Chat Completions requests that give no limit."""

REASONING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
"""Thinking budget (tokens) for each ``reasoning_effort``."""

_MIN_THINKING_BUDGET = 1024

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


class TranslationError(ValueError):
    """A body that cannot be translated. ``param`` is a dotted path to the
    offending field (``body.messages[2].content``), or None for the whole body.
    ``code`` is OpenAI's error code for it: ``missing_required_parameter``,
    ``unknown_parameter``, ``invalid_type``, ``unsupported_parameter`` (a
    setting batchgate cannot honour) or ``invalid_value`` (the rest)."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def unsupported(message: str, param: str) -> TranslationError:
    """A well-formed setting whose meaning batchgate cannot honour."""
    return TranslationError(message, param, "unsupported_parameter")


# --------------------------------------------------------------------------
# Small typed accessors: every wrong type names its path.


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dict(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(
            f"expected an object, got {_type_name(value)}", param, "invalid_type"
        )
    return value


def _list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"expected an array, got {_type_name(value)}", param, "invalid_type")
    return value


def _str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"expected a string, got {_type_name(value)}", param, "invalid_type")
    return value


def _int(value: object, param: str) -> int:
    # bool is an int subclass in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranslationError(
            f"expected an integer, got {_type_name(value)}", param, "invalid_type"
        )
    return value


def _number(value: object, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(f"expected a number, got {_type_name(value)}", param, "invalid_type")
    return float(value)


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise TranslationError(
            f"expected a boolean, got {_type_name(value)}", param, "invalid_type"
        )
    return value


def check_arguments(obj: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """A request body's top-level keys, as OpenAI words an unknown one."""
    allowed_set = set(allowed)
    for key in obj:
        if key not in allowed_set:
            raise TranslationError(
                f"unrecognized request argument supplied: {key}",
                f"{path}.{key}",
                "unknown_parameter",
            )


def check_neutral(
    obj: Mapping[str, Any],
    neutral: Mapping[str, tuple[object, ...]],
    path: str,
    why: Mapping[str, str] | None = None,
) -> None:
    """Settings accepted only at a value that changes nothing (anything else
    would be silently lost): ``unsupported_parameter``, saying ``why``."""
    for key, values in neutral.items():
        if key in obj and not any(obj[key] == value for value in values):
            reason = (why or {}).get(key, f"{key} is not supported")
            raise unsupported(reason, f"{path}.{key}")


def _only_keys(obj: Mapping[str, Any], allowed: Iterable[str], param: str) -> None:
    allowed_set = set(allowed)
    for key in obj:
        if key not in allowed_set:
            raise TranslationError(
                f"unrecognized field {key!r}", f"{param}.{key}", "unknown_parameter"
            )


def _required(obj: Mapping[str, Any], key: str, param: str) -> Any:
    if key not in obj or obj[key] is None:
        raise TranslationError(
            f"missing required field {key!r}", f"{param}.{key}", "missing_required_parameter"
        )
    return obj[key]


def _objects(value: object, param: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each item of the array ``value`` as ``(its path, the object)``; an item
    that is not an object fails when reached, naming its index."""
    for i, raw in enumerate(_list(value, param)):
        path = f"{param}[{i}]"
        yield path, _dict(raw, path)


def _type(obj: Mapping[str, Any], param: str) -> str:
    """The required ``type`` field of the object at ``param``."""
    return _str(_required(obj, "type", param), f"{param}.type")
