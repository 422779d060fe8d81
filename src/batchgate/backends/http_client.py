"""The HTTP plumbing shared by the upstream backends: option validation, API
keys, one pooled client per model, and a JSON POST that reports every failure
as a :class:`base.BackendError` (classified by :mod:`http_errors`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import orjson
import pydantic

from batchgate import config
from batchgate.backends import base, http_errors

_Options = TypeVar("_Options", bound=pydantic.BaseModel)


class OptionsError(ValueError):
    """A model's backend options are invalid (a configuration error)."""


def parse_options(cls: type[_Options], model: config.ModelConfig) -> _Options:
    """``model.options`` validated as ``cls``, with a message naming the model."""
    try:
        return cls.model_validate(model.options)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(options)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise OptionsError(
            f"model {model.name!r} ({model.backend}): invalid options: {problems}"
        ) from None


def resolve_api_key(
    model: config.ModelConfig, *, api_key: str | None, api_key_env: str | None
) -> str | None:
    """The key from the literal option or the named env var.

    A named env var that is unset is an error at startup rather than a stream
    of 401s from the upstream later.
    """
    if api_key is not None:
        return api_key
    if api_key_env is None:
        return None
    value = os.environ.get(api_key_env)
    if not value:
        raise OptionsError(
            f"model {model.name!r}: environment variable {api_key_env} (api_key_env) is not set"
        )
    return value


class PooledClient:
    """One aiohttp session per model, its pool sized to the model's
    concurrency cap so that every concurrent call has a connection.

    aiohttp rather than httpx: on this hot path httpx's connection pool costs
    about 20x more CPU per call (measured against the fake upstream), which
    capped a whole server at a few hundred requests per second. The session is
    made on first use because it must belong to the running event loop.
    """

    def __init__(self, max_connections: int, timeout: float) -> None:
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                # Upstream errors are classified by status, not raised.
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_client(model: config.ModelConfig, *, timeout: float) -> PooledClient:
    return PooledClient(model.max_concurrency, timeout)


async def post_json(
    client: PooledClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    """POST ``body`` as JSON and return the parsed 2xx reply.

    Raises BackendError for transport failures, non-2xx statuses and replies
    that are not JSON (a cut-off body is worth retrying).
    """
    return await call_json(client, "POST", url, headers, data=orjson.dumps(body))


# Reads a failed call's status and body first; an error it returns is raised
# instead of the status's usual one (a provider's "too large" refusal).
Refusal = Callable[[int, bytes], base.BackendError | None]


async def call_json(
    client: PooledClient,
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    data: bytes | aiohttp.FormData | None = None,
    refusal: Refusal | None = None,
) -> Any:
    """One call whose 2xx reply is JSON, parsed. ``data`` is sent as JSON
    when it is bytes (a form sets its own content type). Failures as
    :func:`post_json`; ``refusal`` may name a failed call's error first."""
    send = dict(headers)
    if isinstance(data, bytes):
        send = {"content-type": "application/json", **headers}
    try:
        async with client.session().request(
            method, url, data=data, headers=send, allow_redirects=False
        ) as response:
            content = await response.read()
            status = response.status
            if not 200 <= status < 300:
                refused = refusal(status, content) if refusal is not None else None
                raise refused or http_errors.error_from_status(status, response.headers, content)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise http_errors.error_from_exception(exc) from exc
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        raise base.BackendError(
            f"upstream returned HTTP {status} with a body that is not JSON",
            retryable=True,
        ) from None


async def list_items(
    client: PooledClient, url: str, headers: dict[str, str], *, cursor: str
) -> AsyncIterator[Any]:
    """The items of a cursor-paged list (``{"data": [...], "has_more"}``,
    OpenAI's and Anthropic's shape), page after page: the next page is asked
    for with ``cursor`` = the id of the last object item. ``url`` has a query
    already; a caller that has found what it wants stops iterating."""
    after: str | None = None
    while True:
        page = await call_json(
            client, "GET", url + (f"&{cursor}={after}" if after else ""), headers
        )
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise unreadable_reply("a list page", "it has no data list")
        for item in data:
            yield item
        objects = [item for item in data if isinstance(item, dict)]
        if not objects or not page.get("has_more"):
            return
        after = str(objects[-1].get("id"))


_CHUNK_BYTES = 256 * 1024


async def stream_lines(
    client: PooledClient, url: str, headers: dict[str, str]
) -> AsyncIterator[bytes]:
    """GET ``url`` and yield its body line by line (without the newline;
    blank lines skipped), reading a chunk at a time: a result file of
    hundreds of megabytes is never held whole. Split here rather than with
    aiohttp's readline, which refuses a line longer than its buffer (an
    embeddings reply may be megabytes). A call or a connection that fails,
    before or during the body, raises BackendError."""
    try:
        async with client.session().get(url, headers=headers, allow_redirects=False) as response:
            if not 200 <= response.status < 300:
                content = await response.read()
                raise http_errors.error_from_status(response.status, response.headers, content)
            parts: list[bytes] = []  # the line being read, as it came in
            async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                start = 0
                while (end := chunk.find(b"\n", start)) >= 0:
                    parts.append(chunk[start:end])
                    line = b"".join(parts)
                    parts.clear()
                    if line.strip():
                        yield line
                    start = end + 1
                parts.append(chunk[start:])
            last = b"".join(parts)
            if last.strip():
                yield last
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise http_errors.error_from_exception(exc) from exc


def unreadable_reply(what: str, detail: str) -> base.BackendError:
    """A well-formed HTTP reply whose body is not ``what``: final, because
    the same call will not read better later (502: the upstream's fault)."""
    return base.BackendError(
        f"upstream reply is not {what}: {detail}", retryable=False, status_code=502
    )
