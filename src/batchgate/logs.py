"""Logging for the server and worker processes: human lines, or one JSON
object per line (``--log-format json``) for a log pipeline.

Records carry their fields as ``extra`` (``batch_id``, ``custom_id``,
``attempt``, ...): the JSON form emits each as its own key; the text form
already names them in the message. Nothing logs prompt text or API keys.
An upstream's error message is logged only when asked for
(``--log-error-messages``): some servers echo the input in it.
"""

from __future__ import annotations

import enum
import logging
import sys

from pythonjsonlogger import orjson as json_logger


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def json_formatter() -> logging.Formatter:
    return json_logger.OrjsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


_error_messages = False


def error_messages() -> bool:
    """Whether request lines carry the upstream's error message (not only
    its type and status)."""
    return _error_messages


def configure(
    log_format: LogFormat = LogFormat.TEXT, level: str = "info", *, error_messages: bool = False
) -> None:
    """Send every logger (ours, uvicorn's, SQLAlchemy's) to stderr in one format."""
    global _error_messages
    _error_messages = error_messages
    handler = logging.StreamHandler(sys.stderr)
    if log_format is LogFormat.JSON:
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin otherwise
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP call otherwise
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers are not installed (log_config=None): its
        # records go through ours, in the same format.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
