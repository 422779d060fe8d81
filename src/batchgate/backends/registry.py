"""Build backends from config.

Built-in backends register exactly like third-party ones: a factory under a
name. Third-party packages add theirs through the ``batchgate.backends`` entry
point group (``name = "package.module:create"``). Built-ins are imported lazily
so that, say, an OpenAI-only deployment never loads llama.cpp.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from batchgate import config
from batchgate.backends import base

BackendFactory = Callable[[config.ModelConfig], base.Backend]
CapabilitiesHook = Callable[[config.ModelConfig], base.Capabilities]

_BUILTIN: dict[str, str] = {
    "llama_cpp": "batchgate.backends.llama_cpp:create",
    "openai_compatible": "batchgate.backends.openai_compatible:create",
    "anthropic": "batchgate.backends.anthropic:create",
}

# What a built-in backend honours, read from its settings alone (no client,
# no model load): the API process checks requests against the same
# capabilities the worker's backends declare. The llama_cpp hook lives in
# its options module so that reading it does not import llama.cpp.
_BUILTIN_CAPABILITIES: dict[str, str] = {
    "llama_cpp": "batchgate.backends.llama_cpp.options:capabilities",
    "openai_compatible": "batchgate.backends.openai_compatible:capabilities",
    "anthropic": "batchgate.backends.anthropic:capabilities",
}


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def factory_for(backend_name: str) -> BackendFactory:
    if backend_name in _BUILTIN:
        factory: BackendFactory = _load(_BUILTIN[backend_name])
        return factory
    for entry in importlib.metadata.entry_points(group="batchgate.backends"):
        if entry.name == backend_name:
            loaded: BackendFactory = entry.load()
            return loaded
    known = sorted(_BUILTIN)
    raise ValueError(f"unknown backend {backend_name!r}; built-in backends: {', '.join(known)}")


def create(model: config.ModelConfig) -> base.Backend:
    return factory_for(model.backend)(model)


def capabilities(model: config.ModelConfig) -> base.Capabilities | None:
    """What ``model``'s backend declares, from its settings, without building
    it; None for a third-party backend (its capabilities are known only once
    it is built, in the worker)."""
    if model.backend not in _BUILTIN_CAPABILITIES:
        return None
    hook: CapabilitiesHook = _load(_BUILTIN_CAPABILITIES[model.backend])
    return hook(model)
