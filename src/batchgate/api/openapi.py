"""The served OpenAPI document, made honest about what the routes do.

FastAPI only sees typed parameters, so on its own the document would miss
the bodies routes read raw (for their own path-naming errors and speed),
would promise 422 where batchgate answers 400 in a dialect's envelope, and
would say nothing of auth, rate limits or JSONL downloads. This fills those
in from the same pydantic models the dialects parse with, so the document
and the parsers cannot drift apart, and a fuzzer (tests/api/test_fuzz.py)
checks the server against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastapi
import fastapi.openapi.utils
import pydantic

from batchgate.dialects import anthropic, keys, native, openai, rerun, webhooks

_REF = "#/components/schemas/{model}"

_OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ANTHROPIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}

# Routes that read their JSON body raw: the model it must validate as.
_JSON_BODIES: dict[tuple[str, str], list[type[pydantic.BaseModel]]] = {
    ("post", "/v1/batches"): [native.CreateBody, openai.CreateBody],
    ("post", "/v1/messages/batches"): [anthropic.CreateBody],
    ("post", "/v1/webhook_endpoints"): [webhooks.EndpointCreate],
    ("post", "/v1/keys"): [keys.KeyCreate],
}
_OPTIONAL_JSON_BODIES: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("post", "/v1/batches/{batch_id}/retry"): rerun.RetryBody,
    ("post", "/v1/messages/batches/{batch_id}/retry"): rerun.RetryBody,
}
_UPLOAD: dict[str, Any] = {
    "type": "object",
    "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "purpose": {"type": "string", "enum": [p.value for p in openai.FILE_PURPOSES]},
    },
}
# Routes whose 200 may be a stream of lines or raw bytes instead of JSON.
_STREAMS: dict[tuple[str, str], list[str]] = {
    ("get", "/v1/batches/{batch_id}"): ["application/json", "application/x-ndjson"],
    ("get", "/v1/batches/{batch_id}/results"): ["application/x-ndjson"],
    ("get", "/v1/batches/{batch_id}/errors"): ["application/x-ndjson"],
    ("get", "/v1/messages/batches/{batch_id}/results"): ["application/x-jsonl"],
    ("get", "/v1/files/{file_id}/content"): ["application/octet-stream", "application/x-ndjson"],
}


def install(app: fastapi.FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = fastapi.openapi.utils.get_openapi(
                title=app.title, version=app.version, routes=app.routes
            )
            app.openapi_schema = _honest(schema)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _honest(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    models["OpenAIError"] = _OPENAI_ERROR
    models["AnthropicError"] = _ANTHROPIC_ERROR
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _operation(path, method, operation, lambda m: _ref(models, m))
    # FastAPI's own 422 model is never sent: validation errors are 400s.
    for unused in ("HTTPValidationError", "ValidationError"):
        models.pop(unused, None)
    return schema


def _ref(models: dict[str, Any], model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """``model`` as a component (with the models it uses), and a ref to it.
    Names are prefixed with the dialect (``native_CreateBody``): each
    dialect has its own ``CreateBody`` and ``InlineRequest``."""
    prefix = model.__module__.rsplit(".", 1)[-1] + "_"
    generated = model.model_json_schema(ref_template=_REF.replace("{model}", prefix + "{model}"))
    for name, definition in generated.pop("$defs", {}).items():
        models[prefix + name] = definition
    models[prefix + model.__name__] = generated
    return {"$ref": _REF.format(model=prefix + model.__name__)}


def _operation(
    path: str,
    method: str,
    operation: dict[str, Any],
    ref: Callable[[type[pydantic.BaseModel]], dict[str, Any]],
) -> None:
    key = (method, path)
    if key in _JSON_BODIES:
        models = [ref(model) for model in _JSON_BODIES[key]]
        body = models[0] if len(models) == 1 else {"anyOf": models}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    elif key in _OPTIONAL_JSON_BODIES:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": ref(_OPTIONAL_JSON_BODIES[key])}},
        }
    elif key == ("post", "/v1/files"):
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": _UPLOAD}},
        }
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if key in _STREAMS:
        responses["200"]["content"] = {kind: {} for kind in _STREAMS[key]}
    elif "200" in responses:
        # Routes build their JSON themselves (orjson): every 200 is an object.
        responses["200"]["content"] = {"application/json": {"schema": {"type": "object"}}}
    error = {"$ref": "#/components/schemas/" + _error_model(path)}
    envelope = {"content": {"application/json": {"schema": error}}}
    if _authenticated(path):
        operation["security"] = [{"bearer": []}, {"x-api-key": []}]
        responses["401"] = {"description": "missing, invalid, revoked or expired key", **envelope}
        responses["429"] = {
            "description": "over the key's rate limit (Retry-After) or a quota",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            **envelope,
        }
    responses["default"] = {"description": "an error, in the dialect's envelope", **envelope}


def _error_model(path: str) -> str:
    return "AnthropicError" if path.startswith("/v1/messages") else "OpenAIError"


def _authenticated(path: str) -> bool:
    return path.startswith("/v1/")
