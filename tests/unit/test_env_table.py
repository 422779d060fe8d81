"""One table of ``BATCHGATE_*`` variables (config.ENVIRONMENT): settings and
the CLI read them through it, and docs/configuration.md lists exactly it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from batchgate import config

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "batchgate"


def _markdown_table() -> str:
    lines = ["| Variable | Flag | Sets | Default |", "|---|---|---|---|"]
    for var in config.ENVIRONMENT:
        flag = f"`{var.flag}`" if var.flag else ""
        default = f"`{var.default}`" if var.default else ""
        lines.append(f"| `{var.name}` | {flag} | {var.meaning} | {default} |")
    return "\n".join(lines) + "\n"


def test_the_configuration_page_lists_the_environment_table() -> None:
    assert _markdown_table() in (ROOT / "docs" / "configuration.md").read_text()


def test_no_module_but_config_reads_the_environment() -> None:
    """So every ``BATCHGATE_*`` variable is read through ``config.env``."""
    readers = []
    for path in SRC.rglob("*.py"):
        if path.name == "config.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    # The one other reader: a backend's api_key_env, a variable the user names.
    assert all(reader.startswith("backends/http_client.py:") for reader in readers), readers


def test_every_variable_the_cli_asks_for_is_in_the_table() -> None:
    named = set()
    for path in (SRC / "cli").glob("*.py"):
        named |= set(re.findall(r"config\.env\w*\(\"(BATCHGATE_\w+)\"", path.read_text()))
    assert named and named <= {var.name for var in config.ENVIRONMENT}


def test_a_variable_outside_the_table_cannot_be_read() -> None:
    with pytest.raises(KeyError):
        config.env("BATCHGATE_NOT_A_SETTING", {})


def test_cli_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from batchgate import cli

    monkeypatch.setenv("BATCHGATE_LOG_FORMAT", "json")
    monkeypatch.setenv("BATCHGATE_LOG_ERROR_MESSAGES", "1")
    args = cli.build_parser().parse_args(["worker"])
    assert (args.log_format, args.log_error_messages) == ("json", True)


def test_settings_read_their_variables_from_the_table() -> None:
    environ = {"BATCHGATE_PORT": "9001", "BATCHGATE_COMPLETION_WINDOW": "30s"}
    settings = config.load(environ=environ)
    assert (settings.port, settings.completion_window_seconds) == (9001, 30)


def test_a_variable_sets_a_key_of_a_toml_section_over_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "batchgate.toml"
    toml.write_text("[webhooks]\nallow_private_addresses = false\ntimeout_seconds = 3\n")
    variable = "BATCHGATE_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES"
    settings = config.load(toml, environ={variable: "true"})
    assert settings.webhooks.allow_private_addresses is True
    assert settings.webhooks.timeout_seconds == 3  # the file's other keys stay
    assert config.load(environ={}).webhooks.allow_private_addresses is False
    with pytest.raises(ValueError, match="allow_private_addresses"):
        config.load(environ={variable: "maybe"})
