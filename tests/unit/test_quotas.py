"""The pure admission decision (domain/quotas.py) and the [quotas] config."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from batchgate import cli, config
from batchgate.domain import errors, keys, quotas


def _code(limits: keys.KeyQuotas, usage: quotas.Usage, demand: quotas.Demand) -> str | None:
    try:
        quotas.check("key_x", limits, usage, demand)
    except errors.BatchgateError as exc:
        return exc.code
    return None


def test_token_limit_counts_what_is_already_enqueued() -> None:
    limits = keys.KeyQuotas(max_enqueued_tokens={"m": 100})
    demand = quotas.Demand(tokens={"m": 40})
    assert _code(limits, quotas.Usage(enqueued_tokens={"m": 60}), demand) is None
    assert _code(limits, quotas.Usage(enqueued_tokens={"m": 61}), demand) == (
        "token_limit_exceeded"
    )


def test_token_limit_message_is_worded_as_openai_words_it() -> None:
    limits = keys.KeyQuotas(max_enqueued_tokens={"gpt-x": 90_000})
    with pytest.raises(errors.QuotaExceeded) as raised:
        quotas.check("key_x", limits, quotas.Usage(), quotas.Demand(tokens={"gpt-x": 90_001}))
    assert raised.value.message.startswith(
        "Enqueued token limit reached for gpt-x on API key key_x. Limit: 90,000 enqueued "
        "tokens. Please try again once some in_progress batches have been completed."
    )
    assert raised.value.kind is errors.ErrorKind.QUOTA_EXCEEDED


def test_models_without_a_limit_are_unlimited() -> None:
    limits = keys.KeyQuotas(max_enqueued_tokens={"m": 1})
    assert _code(limits, quotas.Usage(), quotas.Demand(tokens={"other": 10**9})) is None


def test_active_batches_limit_admits_up_to_the_limit() -> None:
    limits = keys.KeyQuotas(max_active_batches=3)
    demand = quotas.Demand(batches=1)
    assert _code(limits, quotas.Usage(active_batches=2), demand) is None
    assert _code(limits, quotas.Usage(active_batches=3), demand) == "batch_limit_exceeded"


def test_stored_bytes_limit() -> None:
    limits = keys.KeyQuotas(max_file_bytes=1000)
    assert _code(limits, quotas.Usage(stored_bytes=500), quotas.Demand(bytes=500)) is None
    assert _code(limits, quotas.Usage(stored_bytes=500), quotas.Demand(bytes=501)) == (
        "storage_limit_exceeded"
    )


def test_a_keys_own_quotas_override_the_defaults_field_by_field() -> None:
    own = keys.KeyQuotas(max_enqueued_tokens={"a": 5}, max_active_batches=2)
    defaults = keys.KeyQuotas(
        max_enqueued_tokens={"a": 50, "b": 60}, max_active_batches=9, max_file_bytes=7
    )
    assert own.over(defaults) == keys.KeyQuotas(
        max_enqueued_tokens={"a": 5, "b": 60}, max_active_batches=2, max_file_bytes=7
    )


def test_quotas_table_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[quotas]\nmax_active_batches = 4\nmax_enqueued_tokens = { "m" = 1000 }\n')
    settings = config.load(path, environ={})
    assert settings.quotas.defaults() == keys.KeyQuotas(
        max_enqueued_tokens={"m": 1000}, max_active_batches=4
    )


def test_a_key_full_on_every_served_model_is_refused_before_parsing() -> None:
    limits = keys.KeyQuotas(max_enqueued_tokens={"a": 10, "b": 10})
    with pytest.raises(errors.QuotaExceeded) as raised:
        quotas.refuse_when_full("key_x", limits, {"a": 10, "b": 12}, ["a", "b"])
    assert raised.value.code == "token_limit_exceeded"


def test_room_on_any_served_model_or_an_unlimited_one_lets_the_body_be_read() -> None:
    limits = keys.KeyQuotas(max_enqueued_tokens={"a": 10, "b": 10})
    quotas.refuse_when_full("key_x", limits, {"a": 10, "b": 9}, ["a", "b"])
    quotas.refuse_when_full("key_x", limits, {"a": 10, "b": 10}, ["a", "b", "c"])


_QUOTA_FLAGS = [
    ("--max-active-batches", keys.MAX_QUOTA_COUNT),
    ("--max-requests-per-batch", keys.MAX_QUOTA_COUNT),
    ("--max-file-bytes", keys.MAX_QUOTA_BYTES),
]


@pytest.mark.parametrize(("flag", "most"), _QUOTA_FLAGS)
def test_the_cli_takes_a_quota_up_to_the_apis_bound_and_no_further(flag: str, most: int) -> None:
    parser = cli.build_parser()
    create = ["keys", "create", "--name", "k", flag]
    attribute = flag.removeprefix("--").replace("-", "_")
    assert getattr(parser.parse_args([*create, str(most)]), attribute) == most
    for bad in (str(most + 1), "0", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args([*create, bad])


def test_the_cli_bounds_enqueued_tokens_as_the_api_does() -> None:
    parser = cli.build_parser()
    create = ["keys", "create", "--name", "k", "--max-enqueued-tokens"]
    top = keys.MAX_QUOTA_TOKENS
    assert parser.parse_args([*create, f"m={top}"]).max_enqueued_tokens == [("m", top)]
    with pytest.raises(SystemExit):
        parser.parse_args([*create, f"m={top + 1}"])


@pytest.mark.parametrize(
    "line",
    [
        f"max_active_batches = {keys.MAX_QUOTA_COUNT + 1}",
        f"max_requests_per_batch = {keys.MAX_QUOTA_COUNT + 1}",
        f"max_file_bytes = {keys.MAX_QUOTA_BYTES + 1}",
        f'max_enqueued_tokens = {{ "m" = {keys.MAX_QUOTA_TOKENS + 1} }}',
    ],
)
def test_the_config_bounds_quotas_as_the_api_does(tmp_path: Path, line: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[quotas]\n{line}\n")
    with pytest.raises(pydantic.ValidationError):
        config.load(path, environ={})
