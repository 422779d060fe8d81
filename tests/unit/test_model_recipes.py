"""Every config recipe in docs/models.md is one batchgate accepts: each
``toml`` block loads, and each model's options pass its backend's own check."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from batchgate import config
from batchgate.backends import registry
from batchgate.backends.provider_batch import options as batch_options

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_a_recipe_for_each_server() -> None:
    names = {name for block in BLOCKS for name in tomllib.loads(block)["models"]}
    backends = {
        entry["backend"] for block in BLOCKS for entry in tomllib.loads(block)["models"].values()
    }
    assert len(names) >= 12 and backends == {
        "llama_cpp",
        "openai_compatible",
        "anthropic",
        "openai_batch",
        "anthropic_batch",
    }


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_recipe_loads_and_its_options_pass_the_backend(block: str, tmp_path: Path) -> None:
    path = tmp_path / "batchgate.toml"
    path.write_text(block)
    settings = config.load(path, environ={})
    assert settings.models
    for model in settings.models.values():
        registry.capabilities(model)  # raises on an option the backend does not take
        if model.backend in batch_options.KINDS:  # and its real-time fallback's table
            fallback = batch_options.job_options(model).realtime_model(model)
            if fallback is not None:
                registry.capabilities(fallback)


@pytest.mark.parametrize(
    "options", [batch_options.OpenAIBatchOptions, batch_options.AnthropicBatchOptions]
)
def test_every_option_of_a_provider_batch_api_is_documented(
    options: type[batch_options.JobOptions],
) -> None:
    section = DOC.read_text().split("## Providers' batch APIs", 1)[1]
    missing = [name for name in options.model_fields if f"`{name}`" not in section]
    assert missing == []
