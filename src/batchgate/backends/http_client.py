"""The HTTP plumbing shared by the upstream backends: option validation, API
keys, one pooled client per model, and a JSON POST that reports every failure
as a :class:`base.BackendError` (classified by :mod:`http_errors`)."""

from __future__ import annotations

import os
from typing import Any, TypeVar

import httpx
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


def make_client(model: config.ModelConfig, *, timeout: float) -> httpx.AsyncClient:
    """One client per model, its pool sized to the model's concurrency cap so
    that every concurrent call has a connection and none waits in the pool."""
    limits = httpx.Limits(
        max_connections=model.max_concurrency,
        max_keepalive_connections=model.max_concurrency,
    )
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout), follow_redirects=False)


async def post_json(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    """POST ``body`` as JSON and return the parsed 2xx reply.

    Raises BackendError for transport failures, non-2xx statuses and replies
    that are not JSON (a cut-off body is worth retrying).
    """
    try:
        response = await client.post(
            url,
            content=orjson.dumps(body),
            headers={"content-type": "application/json", **headers},
        )
    except httpx.HTTPError as exc:
        raise http_errors.error_from_exception(exc) from exc
    if not 200 <= response.status_code < 300:
        raise http_errors.error_from_response(response)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise base.BackendError(
            f"upstream returned HTTP {response.status_code} with a body that is not JSON",
            retryable=True,
        ) from None
