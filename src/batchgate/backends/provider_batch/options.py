"""A provider-batch model entry's options, the job limits they give, and
the registry's capabilities hooks. ::

    [models."gpt-4o-mini-batch"]
    backend = "openai_batch"                 # or "anthropic_batch"
    base_url = "https://api.openai.com/v1"   # /files, /batches appended
                                             # (anthropic: "https://api.anthropic.com")
    api_key_env = "OPENAI_API_KEY"           # anthropic: ANTHROPIC_API_KEY; api_key allowed
    upstream_model = "gpt-4o-mini"           # default: the entry's name
    endpoint = "/v1/chat/completions"        # openai only; or /v1/responses,
                                             # /v1/completions, /v1/embeddings
    max_requests_per_job = 50000             # anthropic: 100000
    max_bytes_per_job = 209715200            # 200 MiB; anthropic: 256 MiB
    flush_after_seconds = 60                 # how long requests are collected
    poll_seconds = 30                        # the first poll's delay, x1.5 each poll
    poll_max_seconds = 600
    sync_fallback_before = "2h"              # a duration ("90m", "7200", 7200)
    delete_files = true                      # openai only: a done job's files
                                             # deleted at the provider
    timeout = 600                            # seconds per HTTP call
    realtime = { backend = "openai_compatible", base_url = "...", api_key_env = "..." }

The request-shaping switches of ``openai_compatible`` (``max_tokens_field``,
``supports_tools``, ``supports_images``, ``supports_pdfs``,
``supports_reasoning_effort``, ``max_context``, ``extra_body``, ``headers``)
and of ``anthropic`` (``anthropic_version``, ``anthropic_beta``,
``max_context``) shape the lines the same way.

``realtime`` names the deadline fallback's upstream: a model entry of its
own (any backend but a provider-batch one), served under this entry's name,
price and concurrency unless it sets its own. Without it a row whose window
runs short has nowhere else to go, and ends ``expired`` if its job does not
come back in time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from batchgate import config
from batchgate.backends import anthropic, base, http_client, openai_bodies
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.endpoints import Endpoint

OPENAI_KIND = "openai_batch"
ANTHROPIC_KIND = "anthropic_batch"
KINDS = frozenset({OPENAI_KIND, ANTHROPIC_KIND})


class JobOptions(BaseModel):
    """What both kinds take: the connection, and how jobs are made and polled."""

    model_config = ConfigDict(extra="forbid")
    base_url: str
    api_key_env: str | None
    api_key: str | None = None
    upstream_model: str | None = None
    max_requests_per_job: int = Field(ge=1)
    max_bytes_per_job: int = Field(ge=1)
    flush_after_seconds: float = Field(default=60.0, ge=0)
    poll_seconds: float = Field(default=30.0, gt=0)
    poll_max_seconds: float = Field(default=600.0, gt=0)
    sync_fallback_before: float = Field(default=7200.0, ge=0)
    timeout: float = Field(default=600.0, gt=0)
    realtime: dict[str, Any] | None = None

    @field_validator("sync_fallback_before", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return config.parse_duration(value) if isinstance(value, str) else value

    @field_validator("realtime")
    @classmethod
    def _realtime_entry(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        backend = value.get("backend")
        if not isinstance(backend, str) or not backend:
            raise ValueError('names no backend (e.g. backend = "openai_compatible")')
        if backend in KINDS:
            raise ValueError(f"cannot be another provider batch API ({backend})")
        return value

    @model_validator(mode="after")
    def _poll_range(self) -> JobOptions:
        if self.poll_max_seconds < self.poll_seconds:
            raise ValueError("poll_max_seconds is less than poll_seconds")
        return self

    def limits(self) -> uj.Limits:
        return uj.Limits(
            max_requests=self.max_requests_per_job,
            max_bytes=self.max_bytes_per_job,
            flush_after_seconds=self.flush_after_seconds,
            poll_seconds=self.poll_seconds,
            poll_max_seconds=self.poll_max_seconds,
            sync_fallback_before=self.sync_fallback_before,
        )

    def realtime_model(self, model: config.ModelConfig) -> config.ModelConfig | None:
        """The fallback upstream's own model entry: this entry's name, price
        and concurrency, under the ``realtime`` table's keys (which win)."""
        if self.realtime is None:
            return None
        entry = {
            "price": model.price,
            "max_concurrency": model.max_concurrency,
            **self.realtime,
            "name": model.name,
        }
        return config.ModelConfig.model_validate(entry)


class OpenAIBatchOptions(JobOptions, openai_bodies.WireOptions):
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS
    max_requests_per_job: int = Field(default=uj.OPENAI_MAX_REQUESTS, ge=1)
    max_bytes_per_job: int = Field(default=uj.OPENAI_MAX_BYTES, ge=1)
    # A done job's input, output and error files are deleted at the
    # provider once its results are in the store (they count against the
    # organisation's file storage); false keeps them, to inspect.
    delete_files: bool = True


class AnthropicBatchOptions(anthropic.Options, JobOptions):
    """The ``anthropic`` backend's options (connection, version, betas,
    context), which win where JobOptions names the same field, and the job
    options."""

    max_requests_per_job: int = Field(default=uj.ANTHROPIC_MAX_REQUESTS, ge=1)
    max_bytes_per_job: int = Field(default=uj.ANTHROPIC_MAX_BYTES, ge=1)


def job_options(model: config.ModelConfig) -> JobOptions:
    """A provider-batch entry's options, parsed for its kind (what the
    dashboard and the dry run read: its flush wait)."""
    kind = OpenAIBatchOptions if model.backend == OPENAI_KIND else AnthropicBatchOptions
    return http_client.parse_options(kind, model)


def openai_capabilities(model: config.ModelConfig) -> base.Capabilities:
    """Registry hook: an ``openai_batch`` entry serves what its one endpoint
    carries (``/v1/embeddings``: embeddings only; otherwise chat, under the
    same switches as ``openai_compatible``)."""
    options = http_client.parse_options(OpenAIBatchOptions, model)
    return openai_bodies.capabilities(options, options.endpoint)


def anthropic_capabilities(model: config.ModelConfig) -> base.Capabilities:
    """Registry hook: an ``anthropic_batch`` entry serves chat, as Messages."""
    options = http_client.parse_options(AnthropicBatchOptions, model)
    return anthropic.messages_capabilities(options.max_context)
