"""Opaque, unguessable ids in each dialect's familiar shape."""

from __future__ import annotations

import secrets

from batchgate.domain.states import Dialect

_BATCH_PREFIX = {Dialect.NATIVE: "batch_", Dialect.OPENAI: "batch_", Dialect.ANTHROPIC: "msgbatch_"}


def _token() -> str:
    return secrets.token_hex(12)


def new_batch_id(dialect: Dialect) -> str:
    return _BATCH_PREFIX[dialect] + _token()


def new_file_id() -> str:
    return "file-" + _token()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def new_api_key() -> str:
    """A secret API key: 32 random bytes, urlsafe; shown to the user once."""
    return "bg-" + secrets.token_urlsafe(32)


def new_worker_id() -> str:
    return "worker-" + secrets.token_hex(6)


def new_upstream_job_id() -> str:
    """An upstream job's id (domain/upstream_jobs.py): it also leases the
    job's rows (requests.lease_owner) and names the job upstream."""
    return "ujob_" + _token()


def new_webhook_endpoint_id() -> str:
    return "we_" + _token()


def new_event_id() -> str:
    return "evt_" + _token()


def new_webhook_message_id() -> str:
    """The ``webhook-id`` of one event's delivery to one endpoint: the same on
    every retry, so receivers dedupe by it."""
    return "msg_" + _token()


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 32 random bytes."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
