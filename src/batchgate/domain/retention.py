"""Retention rules: how long results and files are kept, and what a client
is told once they are gone. Pure; the purge itself is the store's
(``purge_step``), driven by worker/retention.py."""

from __future__ import annotations

import datetime

from batchgate.domain import errors

# OpenAI's bounds for ``output_expires_after`` and a file's ``expires_after``.
MIN_SECONDS = 3600  # 1 hour
MAX_SECONDS = 30 * 86400  # 30 days
ANCHORS = ("created_at",)


def check_expires_after(anchor: object, seconds: object, param: str) -> int:
    """Validate an ``{anchor, seconds}`` policy as OpenAI does; returns the
    seconds. ``param`` names the field in errors (``expires_after``)."""
    if anchor not in ANCHORS:
        raise errors.InvalidRequest(
            f"{param}.anchor must be one of: {', '.join(ANCHORS)}; got {anchor!r}",
            param=f"{param}.anchor",
            code="invalid_value",
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.InvalidRequest(
            f"{param}.seconds must be an integer number of seconds; got {seconds!r}",
            param=f"{param}.seconds",
            code="invalid_type",
        )
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise errors.InvalidRequest(
            f"{param}.seconds must be between {MIN_SECONDS} (1 hour) and {MAX_SECONDS} "
            f"(30 days); got {seconds}",
            param=f"{param}.seconds",
            code="invalid_value",
        )
    return seconds


def expiry(start: float, ttl: int | None) -> float | None:
    """When something that lives ``ttl`` seconds from ``start`` expires
    (None: never)."""
    return None if ttl is None else start + ttl


def _utc(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def results_expired(batch_id: str, at: float) -> errors.NotFound:
    """The 404 for results past their retention."""
    return errors.NotFound(
        f"the results of batch {batch_id!r} expired at {_utc(at)} and are no longer available",
        param="batch_id",
        code="expired",
    )


def file_expired(file_id: str, at: float) -> errors.NotFound:
    """The 404 for a file past its ``expires_at``."""
    return errors.NotFound(
        f"file {file_id!r} expired at {_utc(at)} and is no longer available",
        param="file_id",
        code="expired",
    )
