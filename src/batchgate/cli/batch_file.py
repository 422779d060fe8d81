"""A JSONL batch file as ``submit`` and ``run`` read it: native
``{custom_id, params}`` lines, or OpenAI's ``{custom_id, method, url, body}``
lines (which ``submit`` sends through the Files + Batch route).

Every line is checked here with the dialects' own parsers before anything is
sent, so a bad file is one error naming each bad line by its line number (up
to ``MAX_LISTED``), not the server's first ``requests[3]``. What only the
server can check (its configured limits) comes back naming ``requests[i]``;
``name_lines`` turns that into the line too."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pydantic

from batchgate.dialects import native, openai, paths
from batchgate.domain import errors
from batchgate.domain.endpoints import Endpoint
from batchgate.domain.failures import InputError
from batchgate.services.file_batches import iter_lines

MAX_LISTED = 20  # bad lines shown; the rest are counted
_OPENAI_KEYS = frozenset({"method", "url", "body"})
_JSON_POSITION = re.compile(r"line 1 column (\d+) \(char \d+\)")


class Format(enum.StrEnum):
    NATIVE = "native"  # {custom_id, params}: POST /v1/batches inline
    OPENAI = "openai"  # {custom_id, method, url, body}: Files + Batch


@dataclasses.dataclass(frozen=True)
class BatchFile:
    path: str
    format: Format
    data: bytes  # the file as it is on disk
    lines: list[int]  # the line number of each request, in order
    endpoint: str | None = None  # OpenAI: the url its lines name

    def native_body(self) -> bytes:
        """The native create body, ``{"requests": [...]}``."""
        requests = [orjson.loads(raw) for _number, raw in iter_lines([self.data])]
        return orjson.dumps({"requests": requests})


def read(path: str) -> BatchFile:
    """The file, checked line by line; InvalidRequest listing every bad line."""
    data = Path(path).read_bytes()
    lines = list(iter_lines([data]))
    if not lines:
        raise errors.InvalidRequest(f"{path}: the file holds no requests")
    first = _json_object(lines[0][1])
    if isinstance(first, dict) and "params" not in first and _OPENAI_KEYS & first.keys():
        endpoint = first.get("url")
        found = _openai_errors(lines, endpoint if isinstance(endpoint, str) else "")
        _raise_if_bad(path, found, "OpenAI-format")
        return BatchFile(path, Format.OPENAI, data, [n for n, _ in lines], str(endpoint))
    _raise_if_bad(path, _native_errors(lines), "native")
    return BatchFile(path, Format.NATIVE, data, [n for n, _ in lines])


def _json_object(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _raise_if_bad(path: str, found: list[InputError], shape: str) -> None:
    if not found:
        return
    listed = [f"  line {e.line}: {e.message}" for e in found[:MAX_LISTED]]
    if len(found) > MAX_LISTED:
        listed.append(f"  ... and {len(found) - MAX_LISTED} more")
    noun = "line" if len(found) == 1 else "lines"
    raise errors.InvalidRequest(
        f"{path} ({shape}) has {len(found)} bad {noun}; nothing was sent:\n" + "\n".join(listed)
    )


def _each_line(
    lines: list[tuple[int, bytes]],
    check: Callable[[int, dict[str, object], bytes], InputError | str],
) -> list[InputError]:
    """Every line's error: not JSON, not an object, ``check``'s, or a
    custom_id used before (``check`` returns the custom_id of a good line)."""
    found: list[InputError] = []
    first_line: dict[str, int] = {}
    for number, raw in lines:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # orjson counts within the line; the line is named already.
            where = _JSON_POSITION.sub(r"column \1", str(exc))
            found.append(InputError(number, "invalid_json_line", f"not valid JSON: {where}"))
            continue
        if not isinstance(obj, dict):
            found.append(InputError(number, "invalid_json_line", "not a JSON object"))
            continue
        checked = check(number, obj, raw)
        if isinstance(checked, InputError):
            found.append(checked)
            continue
        first = first_line.setdefault(checked, number)
        if first != number:
            found.append(openai.duplicate_error(number, checked, first))
    return found


def _native_errors(lines: list[tuple[int, bytes]]) -> list[InputError]:
    def check(number: int, obj: dict[str, object], raw: bytes) -> InputError | str:
        if "params" not in obj and _OPENAI_KEYS & obj.keys():
            return InputError(
                number,
                "mixed_formats",
                "an OpenAI-format line ({custom_id, method, url, body}) in a file whose "
                "first line is native ({custom_id, params}); a file holds one format",
            )
        try:
            item = native.InlineRequest.model_validate_json(raw)
            native.check_inline_requests([item])
        except pydantic.ValidationError as exc:
            return InputError(number, "invalid_request", paths.first_error(exc)[1])
        except errors.InvalidRequest as exc:
            return InputError(number, "invalid_request", exc.message.removeprefix("requests[0]."))
        return item.custom_id

    return _each_line(lines, check)


def _openai_errors(lines: list[tuple[int, bytes]], endpoint: str) -> list[InputError]:
    if endpoint not in set(Endpoint):
        served = ", ".join(Endpoint)
        return [
            InputError(
                lines[0][0],
                "invalid_value",
                f"url {endpoint!r} is not an endpoint batchgate serves ({served})",
            )
        ]

    def check(number: int, _obj: dict[str, object], raw: bytes) -> InputError | str:
        parsed = openai.parse_line(raw, number, endpoint)
        if isinstance(parsed, InputError):
            prefix = (
                f"{parsed.param}: " if parsed.param and parsed.param not in parsed.message else ""
            )
            return InputError(number, parsed.code, prefix + parsed.message, parsed.param)
        return parsed.custom_id

    return _each_line(lines, check)


_REQUEST_INDEX = re.compile(r"requests\[(\d+)\](\.?)")


def name_lines(message: str, lines: list[int]) -> str:
    """A server message about ``requests[i]`` (a native body's index) with
    the file's line number in its place: ``requests[2].params.x: ...``
    becomes ``line 4: params.x: ...``."""

    def line(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index >= len(lines):
            return match.group(0)
        return f"line {lines[index]}" + (": " if match.group(2) else "")

    return _REQUEST_INDEX.sub(line, message)
