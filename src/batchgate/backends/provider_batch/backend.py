"""The registry's factories for ``openai_batch`` and ``anthropic_batch``:
options -> client, codec, limits, capabilities and the optional real-time
fallback backend, in one :class:`ProviderBatchBackend`."""

from __future__ import annotations

from batchgate import config
from batchgate.backends import anthropic, base, http_client, openai_bodies, registry
from batchgate.backends.provider_batch import ProviderBatchBackend, codec, options
from batchgate.backends.provider_batch.client_anthropic import AnthropicBatchClient
from batchgate.backends.provider_batch.client_openai import OpenAIBatchClient

# What every line of an Anthropic job is (Message Batches carry Messages bodies).
ANTHROPIC_ENDPOINT = "/v1/messages"


def _realtime(model: config.ModelConfig, job_options: options.JobOptions) -> base.Backend | None:
    """The fallback upstream, built like any model's backend; it must serve
    the kind of request the batch upstream does."""
    entry = job_options.realtime_model(model)
    if entry is None:
        return None
    backend = registry.create(entry)
    needed = registry.capabilities(model)
    served = getattr(backend, "capabilities", None)
    if needed is not None and isinstance(served, base.Capabilities):
        missing = needed.serves - served.serves
        if missing:
            raise http_client.OptionsError(
                f"model {model.name!r}: its realtime backend ({entry.backend}) does not serve "
                + ", ".join(sorted(kind.value for kind in missing))
            )
    return backend


def create_openai(model: config.ModelConfig) -> ProviderBatchBackend:
    parsed = http_client.parse_options(options.OpenAIBatchOptions, model)
    api_key = http_client.resolve_api_key(
        model, api_key=parsed.api_key, api_key_env=parsed.api_key_env
    )
    client = OpenAIBatchClient(
        http_client.make_client(model, timeout=parsed.timeout),
        base_url=parsed.base_url,
        endpoint=parsed.endpoint.value,
        headers=openai_bodies.api_headers(api_key, parsed),
        delete_files=parsed.delete_files,
    )
    return ProviderBatchBackend(
        model=model.name,
        kind=options.OPENAI_KIND,
        endpoint=parsed.endpoint.value,
        client=client,
        codec=codec.OpenAICodec(
            parsed.endpoint, upstream_model=parsed.upstream_model or model.name, options=parsed
        ),
        limits=parsed.limits(),
        capabilities=openai_bodies.capabilities(parsed, parsed.endpoint),
        realtime=_realtime(model, parsed),
    )


def create_anthropic(model: config.ModelConfig) -> ProviderBatchBackend:
    parsed = http_client.parse_options(options.AnthropicBatchOptions, model)
    api_key = http_client.resolve_api_key(
        model, api_key=parsed.api_key, api_key_env=parsed.api_key_env
    )
    client = AnthropicBatchClient(
        http_client.make_client(model, timeout=parsed.timeout),
        base_url=parsed.base_url,
        headers=anthropic.api_headers(
            api_key, version=parsed.anthropic_version, beta=parsed.anthropic_beta
        ),
    )
    return ProviderBatchBackend(
        model=model.name,
        kind=options.ANTHROPIC_KIND,
        endpoint=ANTHROPIC_ENDPOINT,
        client=client,
        codec=codec.AnthropicCodec(upstream_model=parsed.upstream_model or model.name),
        limits=parsed.limits(),
        capabilities=anthropic.messages_capabilities(parsed.max_context),
        realtime=_realtime(model, parsed),
    )
