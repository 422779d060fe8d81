"""Third-party backends register through the ``batchgate.backends`` entry
point and declare their capabilities through it, as built-ins do."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgate import config, testing
from batchgate.backends import base, capability, registry
from batchgate.canonical import chat
from batchgate.services import batch_create
from tests import plugins


def test_a_plugin_declares_its_capabilities_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins.install(tmp_path, monkeypatch, "bg_declaring", plugins.DECLARING, "bg_declaring")
    model = config.ModelConfig(name="plug", backend="bg_declaring")
    declared = registry.capabilities(model)
    assert declared == base.Capabilities(tools=False, max_context=100)
    assert isinstance(registry.create(model), testing.FakeBackend)
    # So the API process checks its requests at submit like a built-in's.
    assert batch_create.declared_capabilities({"plug": model}) == {"plug": declared}


def test_a_backend_class_declares_them_as_a_class_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = """
    from batchgate import testing
    from batchgate.backends import base

    class Backend(testing.FakeBackend):
        capabilities = base.Capabilities(images=False)

        def __init__(self, model):
            super().__init__(capabilities=Backend.capabilities)
    """
    plugins.install(tmp_path, monkeypatch, "bg_class", source, "bg_class:Backend")
    model = config.ModelConfig(name="plug", backend="bg_class")
    assert registry.capabilities(model) == base.Capabilities(images=False)
    assert isinstance(registry.create(model), testing.FakeBackend)


def test_a_bare_factory_still_works_but_declares_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = """
    from batchgate import testing

    def create(model):
        return testing.FakeBackend()
    """
    plugins.install(tmp_path, monkeypatch, "bg_bare", source, "bg_bare:create")
    model = config.ModelConfig(name="plug", backend="bg_bare")
    assert registry.capabilities(model) is None
    assert isinstance(registry.create(model), testing.FakeBackend)


def test_a_declaration_that_is_not_capabilities_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = """
    def capabilities(model):
        return {"tools": True}

    def create(model):
        raise NotImplementedError
    """
    plugins.install(tmp_path, monkeypatch, "bg_wrong", source, "bg_wrong")
    with pytest.raises(TypeError, match="returned dict, not"):
        registry.capabilities(config.ModelConfig(name="plug", backend="bg_wrong"))


def test_the_plugins_declaration_refuses_what_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins.install(tmp_path, monkeypatch, "bg_declaring", plugins.DECLARING, "bg_declaring")
    declared = registry.capabilities(config.ModelConfig(name="plug", backend="bg_declaring"))
    assert declared is not None
    tool = chat.Tool(name="f")
    request = chat.ChatRequest(
        model="plug", max_tokens=8, messages=[chat.Message(role="user", content="hi")], tools=[tool]
    )
    with pytest.raises(base.UnsupportedRequest, match="does not support tool use"):
        capability.check("plug", declared, request)
